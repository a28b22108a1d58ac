"""Stage one: which files of a workspace to index (ignore rules, binary/size checks, languages)."""
