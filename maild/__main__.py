from maild.entry import main

raise SystemExit(main())
