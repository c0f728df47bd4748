"""torch model and training files the porting tests convert (written for these tests)."""
