"""``python -m shared.devdb``: run or install the development database."""

from shared.devdb import main

raise SystemExit(main())
