#!/usr/bin/env bash
# Make the demo videos, index the library, check the suspects, write demo/report.json.
set -euo pipefail
python examples/make_demo.py demo
vcopy index demo/library_videos --library demo/library
vcopy query demo/suspects --library demo/library --json demo/report.json
echo "report: demo/report.json; truth: demo/truth.json"
