from starchat_lsp.cli import main

raise SystemExit(main())
