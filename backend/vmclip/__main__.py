from vmclip.cli import main

raise SystemExit(main())
