#!/usr/bin/env bash
# Native AOT, one signed Lambda invocation from start to exit (issue 13; figures in bench/README.md). Publishes
# samples/AotInvoke with Native AOT (as the sample is: credentials in code, the default credentials chain turned off by
# its feature switch and trimmed away; and `aot-chain`, with the chain kept) and for the JIT (framework-dependent), and
# samples/AotFloor's two floors (a bare HttpClient, unsigned; and the same with one SHA-256); starts the emulator out of
# process (--no-verify, so that every app is answered alike); then runs the five apps ROUNDS times, interleaved (each round in a new random order, so that
# the load of a shared machine falls on all alike): once timed (bash's EPOCHREALTIME around the run: no process
# of the harness's own in between), once under GNU time for the peak RSS. The first 5 rounds are warm-up. Prints the
# sizes, each app's median and minimum, and the ratios to the floors as the median of the ratios within a round.
#   bash bench/aot-startup.sh [ROUNDS=200]                    needs GNU time (apt-get install time) and python3
# Extra publish options for all four AOT builds (to try a trimming switch): AOT_OPTIONS='-p:StackTraceSupport=false'
# Other builds to run alongside (such as AotInvoke published from a changed copy of the library, taking the endpoint as
# its argument): EXTRA_APPS='name=/path/to/binary ...'
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-200}
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
publish samples/AotInvoke "$out/aot-chain" -p:DefaultCredentialsChain=true $options
publish samples/AotInvoke "$out/jit" -p:PublishAot=false --self-contained false
publish samples/AotFloor "$out/floor" $options
publish samples/AotFloor "$out/floor-sha256" -p:Sha256=true $options
dotnet build emulator -c Release >"$out/emulator-build.log" 2>&1 || { cat "$out/emulator-build.log"; exit 1; }

dotnet emulator/bin/Release/net10.0/SigV4Lite.Emulator.dll --port 0 --no-verify >"$out/emulator.log" 2>&1 &
emulator=$!
trap 'kill $emulator 2>/dev/null; rm -rf "$out"' EXIT
for _ in $(seq 300); do grep -qs 'listening on' "$out/emulator.log" && break; sleep 0.1; done
url=$(sed -n 's/^Lambda emulator listening on //p' "$out/emulator.log" | tr -d '\r')
[ -n "$url" ] || { cat "$out/emulator.log"; exit 1; }

names=(aot aot-chain jit floor floor-sha256)
commands=("$out/aot/AotInvoke $url" "$out/aot-chain/AotInvoke $url" "$out/jit/AotInvoke $url" "$out/floor/AotFloor $url" "$out/floor-sha256/AotFloor $url")
for extra in ${EXTRA_APPS:-}; do names+=("${extra%%=*}"); commands+=("${extra#*=} $url"); done
for i in "${!names[@]}"; do # each answers once before it is timed
  answer=$(${commands[$i]}) || { echo "${names[$i]} failed: $answer"; exit 1; }
  echo "${names[$i]}: $answer"
done

echo "sizes (bytes): aot $(stat -c %s "$out/aot/AotInvoke"), aot-chain $(stat -c %s "$out/aot-chain/AotInvoke"), floor $(stat -c %s "$out/floor/AotFloor"), floor-sha256 $(stat -c %s "$out/floor-sha256/AotFloor")"
for round in $(seq $((rounds + 5))); do
  for i in $(shuf -e "${!names[@]}"); do
    start=$EPOCHREALTIME
    ${commands[$i]} >/dev/null
    end=$EPOCHREALTIME
    [ "$round" -le 5 ] && continue
    echo "$round ${names[$i]} $start $end" >>"$out/times"
    /usr/bin/time -f "$round ${names[$i]} %M" -a -o "$out/rss" ${commands[$i]} >/dev/null
  done
done

python3 - "$out" "${names[@]}" <<'PY'
import collections, statistics, sys
out, names = sys.argv[1], sys.argv[2:]
time = collections.defaultdict(dict)  # app -> round -> ms
for line in open(f"{out}/times"):
    r, n, start, end = line.split()
    time[n][r] = (float(end) - float(start)) * 1000
rss = collections.defaultdict(dict)  # app -> round -> MiB
for line in open(f"{out}/rss"):
    r, n, kib = line.split()
    rss[n][r] = int(kib) / 1024
def ratio(values, n, floor):  # median of the ratios within a round
    return statistics.median(values[n][r] / values[floor][r] for r in values[n])
print(f"{len(time[names[0]])} rounds; time in ms (median, min, p90), peak RSS in MiB (median, max); ratios: median of a round's ratios")
for n in names:
    t = sorted(time[n].values()); m = sorted(rss[n].values())
    print(f"  {n:13} {statistics.median(t):6.1f} {t[0]:6.1f} {t[int(len(t) * 0.9)]:6.1f} ms"
          f"  {ratio(time, n, 'floor'):5.2f}x floor {ratio(time, n, 'floor-sha256'):5.2f}x floor-sha256"
          f"   {statistics.median(m):5.1f} {m[-1]:5.1f} MiB {ratio(rss, n, 'floor-sha256'):5.2f}x floor-sha256")
PY
