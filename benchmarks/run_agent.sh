#!/bin/sh
# One `citrixagent run` over a fleet written by `python benchmarks/fleet.py serve --dir FLEET ...`,
# for timing from outside, e.g.  /usr/bin/time -v benchmarks/run_agent.sh /tmp/fleet 4 fresh
#
#   run_agent.sh FLEET WORKERS fresh   a new empty state dir under FLEET/states (fleet enrollment)
#   run_agent.sh FLEET WORKERS steady  FLEET/state (as left by `fleet.py serve --enroll`)
#   run_agent.sh FLEET WORKERS noop    the wrapper alone (its own overhead: mkdir + exec of `true`)
#
# The agent replaces this shell (exec), so the timer sees one process: the agent.
set -eu
fleet=$1
workers=$2
mode=${3:-fresh}
repo=$(cd "$(dirname "$0")/.." && pwd)
# $PYTHON, else the checkout's .venv, else the python on PATH (e.g. an activated venv)
if [ -n "${PYTHON:-}" ]; then python=$PYTHON
elif [ -x "$repo/.venv/bin/python" ]; then python=$repo/.venv/bin/python
else python=python3
fi
case $mode in
    fresh)
        mkdir -p "$fleet/states"
        state=$(mktemp -d "$fleet/states/run-XXXXXX")
        ;;
    steady) state=$fleet/state ;;
    noop)
        mkdir -p "$fleet/states"
        state=$(mktemp -d "$fleet/states/noop-XXXXXX")
        exec true
        ;;
    *) echo "mode: fresh, steady or noop" >&2; exit 2 ;;
esac
export PYTHONPATH="$repo" CITRIXAGENT_ACCEPT_LICENSE=yes CITRIXAGENT_STATE_DIR="$state"
exec "$python" -m citrixagent --scm-config "$fleet/sandbox/scm.yaml" run "$fleet/profiles" --workers "$workers"
