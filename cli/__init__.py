"""cnnviz's click CLI: parse -> call the library -> render -> save. No math here."""
