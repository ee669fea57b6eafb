#!/usr/bin/env bash
# How well ntm's MPC presets predict the published TLSNotary measurements (issue 5,
# "Benchmark / accuracy figure").
#
# For each preset (and --reveal option), over the published rows it models (medians over the
# runs of each configuration in data/tlsnotary/): the median and worst relative error of the
# predicted total time, the worst relative error of bytes uploaded and downloaded, and the
# worst row. The last line is the worst median time error across presets.
#
# These are in-sample errors: the presets are calibrated on these rows. Pass --loo for a
# leave-one-out check as well (each row of alpha.12-14 predicted by a calibration that did not
# see it); -v prints every row.
#
# tlsn-faq is listed against the alpha.12 rows (the FAQ's era) for reference; it is not
# calibrated, and its upload is the FAQ's rule of thumb.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --quiet --release --example mpc_accuracy -- "$@"
