from aigents_lsp.cli import main

raise SystemExit(main())
