#!/usr/bin/env bash
echo "bench: not built yet (see issue 2)" >&2
exit 1
