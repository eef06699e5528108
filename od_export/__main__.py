from od_export.cli import console_main

console_main()
