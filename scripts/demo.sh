#!/usr/bin/env bash
echo "demo: not built yet (see issue 2)" >&2
exit 1
