#!/usr/bin/env python3
"""Groups `perf script` samples of one process by the nearest frame that names a part of the work.

    perf record -F 1999 -g -p PID -o perf.data -- sleep 10
    perf script -i perf.data | python3 bench/tools/perf_groups.py CALLS_PER_SECOND_OF_SAMPLING

Each sample goes to the first group whose pattern matches a frame, walking from the leaf to the root; JIT frames
anywhere in the stack win, and a leaf in the runtime's native code (GC, allocation, stubs) is its own group. With the number of calls made
while sampling, prints µs of CPU per call for each group (samples x period / calls).
"""
import re, sys
from collections import Counter

ANYWHERE = [
    ("JIT, tiering", re.compile(r"libclrjit")),
]
# The runtime's native code has no symbols here: a sample whose leaf is in it (GC, allocation slow path, stubs,
# write barriers, casts) is its own group.
LEAF = [
    ("runtime native code (GC, allocation, stubs; no symbols)", re.compile(r"libcoreclr\.so")),
]
NEAREST = [
    ("SigV4 signing (SigV4.cs, with its OpenSSL calls)", re.compile(r"SigV4Lite\.SigV4[:+]|SigV4Lite\.SigningScope|SigV4Lite\.AwsCredentials|SigV4Lite\.PreparedSigner")),
    ("OpenSSL, no managed caller found", re.compile(r"libcrypto|libssl|Cryptography\.Native")),
    ("LambdaClient/AwsClient per call", re.compile(r"SigV4Lite\.(AwsClient|LambdaClient|LambdaWire|AwsResponse|LambdaResponse|RequestRules|ResponseBody|AttemptTimeouts|RetryPolicy|AwsErrors|LambdaRequest|AwsRequest)")),
    ("fan-out engine (FanOut*, channel, slots) / Parallel.ForEachAsync", re.compile(r"SigV4Lite\.(FanOut|ConcurrencyLimiter)|System\.Threading\.Channels|SemaphoreSlim|Parallel")),
    ("benchmark code (input, reading the JSON)", re.compile(r"SigV4Lite\.Bench|System\.Text\.Json")),
    ("System.Net.Http", re.compile(r"System\.Net\.Http")),
    ("System.Net.Sockets", re.compile(r"System\.Net\.Sockets")),
    ("thread pool, ExecutionContext, tasks", re.compile(r"System\.Threading|System\.Runtime\.CompilerServices|ThreadPool")),
]

def main():
    calls = float(sys.argv[1]) if len(sys.argv) > 1 else 0
    counts, periods = Counter(), Counter()
    sample, period = [], 0
    header = re.compile(r"^\S.*?\s(\d+)\s+\S+:\s*$|^\S")
    def flush():
        if not sample: return
        group = None
        for name, pat in ANYWHERE:
            if any(pat.search(f) for f in sample): group = name; break
        if group is None:
            for name, pat in LEAF:
                if pat.search(sample[0]): group = name; break
        if group is None:
            for f in sample:
                for name, pat in NEAREST:
                    if pat.search(f): group = name; break
                if group: break
        group = group or "no managed frame: kernel network stack, scheduler, runtime helpers"
        counts[group] += 1
        periods[group] += period or 1
    for line in sys.stdin:
        if not line.strip():
            flush(); sample = []; period = 0; continue
        if not line.startswith((" ", "\t")):
            m = re.search(r"\s(\d+)\s+(cpu-clock|cycles|task-clock)\S*:", line)
            period = int(m.group(1)) if m else 0
            continue
        sample.append(line.strip())
    flush()
    total = sum(periods.values())
    for name, p in periods.most_common():
        us = f"{p / 1e3 / calls:.2f} µs" if calls else ""
        print(f"| {name} | {100.0 * p / total:.1f}% | {us} |")
    print(f"| total | {counts.total()} samples | {total / 1e3 / calls:.2f} µs |" if calls else f"| total | {counts.total()} samples | |")

main()
