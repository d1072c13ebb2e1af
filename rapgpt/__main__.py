from rapgpt.cli import main

raise SystemExit(main())
