#!/usr/bin/env bash
# Native AOT, one signed Lambda invocation from start to exit (issue 13; figures in bench/README.md). Publishes
# samples/AotInvoke with Native AOT and for the JIT (framework-dependent), and samples/AotFloor's two floors (a bare
# HttpClient, unsigned; and the same with one SHA-256); starts the emulator out of process (--no-verify, so that every
# app is answered alike); then, in ROUNDS rounds, times RUNS runs of each app with hyperfine and reads each app's
# peak RSS with GNU time. Prints sizes, per-round medians, the median of the rounds and the ratios to the floors.
#   bash bench/aot-startup.sh [ROUNDS=5] [RUNS=40]          needs hyperfine and GNU time (apt-get install hyperfine time)
# Extra publish options for all four AOT builds (to try a trimming switch): AOT_OPTIONS='-p:UseSystemResourceKeys=true'
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
runs=${2:-40}
options=${AOT_OPTIONS:-}
out=$(mktemp -d)
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

publish() { # project, output, options...
  local project=$1 output=$2; shift 2
  dotnet publish "$project" -c Release -r linux-x64 -o "$output" "$@" >"$out/publish.log" 2>&1 || { cat "$out/publish.log"; exit 1; }
  if grep -qE ': warning ' "$out/publish.log"; then grep -E ': warning ' "$out/publish.log"; echo "publish of $project warned"; exit 1; fi
}
# The two floors share obj/: published one after the other, each into its own output.
publish samples/AotInvoke "$out/aot" $options
publish samples/AotInvoke "$out/jit" -p:PublishAot=false --self-contained false
publish samples/AotFloor "$out/floor" $options
publish samples/AotFloor "$out/floor-sha256" -p:Sha256=true $options
dotnet build emulator -c Release >"$out/emulator-build.log" 2>&1 || { cat "$out/emulator-build.log"; exit 1; }

dotnet emulator/bin/Release/net10.0/SigV4Lite.Emulator.dll --port 0 --no-verify >"$out/emulator.log" 2>&1 &
emulator=$!
trap 'kill $emulator 2>/dev/null; rm -rf "$out"' EXIT
for _ in $(seq 300); do grep -q 'listening on' "$out/emulator.log" && break; sleep 0.1; done
url=$(sed -n 's/^Lambda emulator listening on //p' "$out/emulator.log" | tr -d '\r')
[ -n "$url" ] || { cat "$out/emulator.log"; exit 1; }

names=(aot jit floor floor-sha256)
commands=("$out/aot/AotInvoke $url" "$out/jit/AotInvoke $url" "$out/floor/AotFloor $url" "$out/floor-sha256/AotFloor $url")
for i in "${!names[@]}"; do # each answers once before it is timed
  answer=$(${commands[$i]}) || { echo "${names[$i]} failed: $answer"; exit 1; }
  echo "${names[$i]}: $answer"
done

echo "sizes (bytes): aot $(stat -c %s "$out/aot/AotInvoke"), floor $(stat -c %s "$out/floor/AotFloor"), floor-sha256 $(stat -c %s "$out/floor-sha256/AotFloor")"
for round in $(seq "$rounds"); do
  hyperfine -N --warmup 5 --runs "$runs" --export-json "$out/time-$round.json" "${commands[@]}" >/dev/null
  for i in "${!names[@]}"; do # peak RSS, in KiB, of as many runs, interleaved with the other apps
    for _ in $(seq 10); do /usr/bin/time -f %M -a -o "$out/rss-${names[$i]}" ${commands[$i]} >/dev/null; done
  done
done

python3 - "$out" "$rounds" "${names[@]}" <<'PY'
import json, statistics, sys
out, rounds, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
medians = {n: [] for n in names}
for r in range(1, rounds + 1):
    results = json.load(open(f"{out}/time-{r}.json"))["results"]
    for n, result in zip(names, results):
        medians[n].append(result["median"] * 1000)
    print(f"round {r}: " + ", ".join(f"{n} {medians[n][-1]:.1f} ms" for n in names))
time = {n: statistics.median(m) for n, m in medians.items()}
rss = {n: statistics.median(int(l) for l in open(f"{out}/rss-{n}")) / 1024 for n in names}
print("median of the rounds' medians, and the peak RSS (median of the runs):")
for n in names:
    print(f"  {n:13} {time[n]:6.1f} ms  {time[n] / time['floor']:.2f}x floor  {time[n] / time['floor-sha256']:.2f}x floor-sha256"
          f"   {rss[n]:5.1f} MiB  {rss[n] / rss['floor-sha256']:.2f}x floor-sha256")
PY
