"""Importers turn other projects' layouts into a golden set, a corpus and a locked manifest."""
