"""The completion engine: pure data in, pure data out. No pygls here."""
