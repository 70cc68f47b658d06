#!/usr/bin/env bash
# Regenerates docs/portal.png, the screenshot of the self-service portal shown in README:
# runs the portal's browser test (tests/portal_browser.rs) against the services of
# .ci/services.sh with KEYMINT_PORTAL_SCREENSHOT pointing into docs/. CI never runs this:
# it does not write into the checkout. Commit the new image if it changed.
#
#   bash .ci/screenshot.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
KEYMINT_PORTAL_SCREENSHOT="$PWD/docs/portal.png" bash .ci/services.sh \
  cargo test --all-features --test portal_browser -- --include-ignored
echo "wrote docs/portal.png"
