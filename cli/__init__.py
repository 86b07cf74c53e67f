"""The ``touchbase`` command line: for networkers trying the product, operators and developers."""
