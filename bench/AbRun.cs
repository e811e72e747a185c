using System.Diagnostics;
using System.Globalization;
using System.Linq.Expressions;
using System.Reflection;
using System.Runtime.Loader;

namespace SigV4Lite.Bench;

/// <summary>
/// <c>--ab BASELINE_DLL [rounds] [--mock]</c>: this build's library against another build of it (a SigV4Lite.dll built
/// from another commit), both loaded in this one process (the other in an <see cref="AssemblyLoadContext"/> of its own)
/// and run turn by turn: InvokeAllAsync, InvokeEachAsync and InvokeAsync under Parallel.ForEachAsync, 2,000 calls at 256
/// a round, answered in process (as <c>--fanout-overhead --yield</c>) or, with <c>--mock</c>, by the fast mock (10,000
/// at 256). This machine's speed drifts by a factor of two from minute to minute; two processes run minutes apart
/// cannot tell 0.2 µs apart, the same rounds in one process can. Both builds are driven through the same compiled
/// delegates, so the comparison is fair to each.
/// </summary>
internal static class AbRun
{
    public static int Run(TextWriter output, string baselinePath, int rounds, bool mock)
    {
        var baseline = new AssemblyLoadContext("baseline").LoadFromAssemblyPath(Path.GetFullPath(baselinePath));
        int count = mock ? 10_000 : 2_000;
        const int concurrency = 256;
        using var server = mock ? LambdaMockProcess.Start() : null;
        var endpoint = server?.Endpoint ?? new Uri("http://127.0.0.1:9/");
        Func<HttpMessageHandler?> handler = () => mock ? null : FanOutOverhead.CannedHandler(yielding: true);
        var ways = new List<(string Name, Func<Task<int>> Run)>();
        var clients = new List<IDisposable>();
        foreach (var (label, assembly) in new[] { ("this build", typeof(LambdaClient).Assembly), ("baseline", baseline) })
        {
            var library = new LibraryWays(assembly, endpoint, handler(), count, concurrency);
            clients.Add(library);
            ways.Add(($"InvokeAllAsync ({label})", library.InvokeAllAsync));
            ways.Add(($"InvokeEachAsync ({label})", library.InvokeEachAsync));
            ways.Add(($"InvokeAsync in Parallel.ForEachAsync ({label})", library.InvokeInParallelForEachAsync));
        }
        var methods = ways.ToArray();
        output.WriteLine($"// this build: {typeof(LambdaClient).Assembly.Location}; baseline: {baseline.Location}; {(mock ? $"mock pid {server!.ProcessId}" : "in-process answers")}");
        // Warm-up: past tiered JIT (MeasureRounds then goes on until a round compiles nothing).
        var (times, bytes, cpu, _, _) = FanOutInterleaved.MeasureRounds(methods, rounds, server?.ProcessId ?? Environment.ProcessId, warmUpRounds: mock ? 6 : 150);
        output.WriteLine($"{count:N0} calls at {concurrency}, {rounds} rounds, {(mock ? "against the mock" : "in-process answers, each from the thread pool")}; load average {FanOutInterleaved.LoadAverage()}");
        output.WriteLine();
        output.WriteLine("| way | this build: median round | baseline: median round | time, this / baseline (median of rounds) | client CPU per call: this, baseline | allocated per call: this, baseline |");
        output.WriteLine("|---|---:|---:|---:|---:|---:|");
        int half = methods.Length / 2;
        for (int m = 0; m < half; m++)
        {
            double ratio = FanOutInterleaved.Median(times[m].Zip(times[m + half], (a, b) => a / b).ToList());
            string name = methods[m].Name[..methods[m].Name.LastIndexOf(" (", StringComparison.Ordinal)];
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {name} | {FanOutInterleaved.Median(times[m]) * 1e3:F1} ms | {FanOutInterleaved.Median(times[m + half]) * 1e3:F1} ms | {ratio:F3} | {PerCall(cpu[m], rounds, count)}, {PerCall(cpu[m + half], rounds, count)} | {bytes[m] / (double)rounds / count:N0} B, {bytes[m + half] / (double)rounds / count:N0} B |"));
        }
        foreach (var client in clients) client.Dispose();
        return 0;
    }

    private static string PerCall(TimeSpan cpu, int rounds, int count) =>
        (cpu.TotalMicroseconds / rounds / count).ToString("F2", CultureInfo.InvariantCulture) + " µs";

    /// <summary>
    /// One build of the library, driven through delegates compiled against its own types: a LambdaClient with the
    /// benchmark's settings, and its three ways of fanning out, each answer read as <see cref="FastFanOut.ReadAnswer"/>.
    /// </summary>
    private sealed class LibraryWays : IDisposable
    {
        private readonly object _client;
        private readonly int _count, _concurrency;
        private readonly Func<object, IEnumerable<object>, int, Task> _invokeAll;       // client, requests, concurrency
        private readonly Func<Task, IEnumerable<ReadOnlyMemory<byte>>> _allPayloads;
        private readonly Func<object, long, int, IAsyncEnumerable<ReadOnlyMemory<byte>>> _invokeEach; // client, count, concurrency
        private readonly Func<object, object, CancellationToken, Task> _invoke;
        private readonly Func<Task, ReadOnlyMemory<byte>> _invokePayload;
        private readonly Func<string, byte[], object> _request;

        public LibraryWays(Assembly library, Uri endpoint, HttpMessageHandler? handler, int count, int concurrency)
        {
            (_count, _concurrency) = (count, concurrency);
            Type T(string name) => library.GetType("SigV4Lite." + name, throwOnError: true)!;
            var options = Activator.CreateInstance(T("AwsClientOptions"))!;
            Set(options, "Region", "us-east-1");
            Set(options, "Endpoint", endpoint);
            Set(options, "Credentials", Activator.CreateInstance(T("AwsCredentials"), "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", null, null));
            if (handler is not null) Set(options, "HttpHandler", handler);
            var clientType = T("LambdaClient");
            _client = Activator.CreateInstance(clientType, options)!;

            var requestType = T("LambdaRequest");
            var responseType = T("LambdaResponse");
            var name = Expression.Parameter(typeof(string));
            var bytes = Expression.Parameter(typeof(byte[]));
            var constructor = requestType.GetConstructor([typeof(string), typeof(ReadOnlyMemory<byte>)])!;
            _request = Expression.Lambda<Func<string, byte[], object>>(
                Expression.New(constructor, name, Expression.Convert(bytes, typeof(ReadOnlyMemory<byte>))), name, bytes).Compile();

            var fanOutOptions = T("AwsFanOutOptions");
            var requests = typeof(IEnumerable<>).MakeGenericType(requestType);
            var invokeAll = clientType.GetMethod("InvokeAllAsync", [requests, fanOutOptions, typeof(CancellationToken)])!;
            var c = Expression.Parameter(typeof(object));
            var r = Expression.Parameter(typeof(IEnumerable<object>));
            var n = Expression.Parameter(typeof(int));
            var makeOptions = Expression.MemberInit(Expression.New(fanOutOptions), Expression.Bind(fanOutOptions.GetProperty("MaxConcurrency")!, n));
            var cast = Expression.Call(typeof(Enumerable), nameof(Enumerable.Cast), [requestType], r);
            _invokeAll = Expression.Lambda<Func<object, IEnumerable<object>, int, Task>>(
                Expression.Call(Expression.Convert(c, clientType), invokeAll, cast, makeOptions, Expression.Default(typeof(CancellationToken))), c, r, n).Compile();
            var task = Expression.Parameter(typeof(Task));
            var list = typeof(IReadOnlyList<>).MakeGenericType(responseType);
            var response = Expression.Parameter(responseType);
            var payloadOf = Expression.Lambda(Expression.Property(response, "Payload"), response);
            _allPayloads = Expression.Lambda<Func<Task, IEnumerable<ReadOnlyMemory<byte>>>>(
                Expression.Call(typeof(Enumerable), nameof(Enumerable.Select), [responseType, typeof(ReadOnlyMemory<byte>)],
                    Expression.Property(Expression.Convert(task, typeof(Task<>).MakeGenericType(list)), "Result"), payloadOf), task).Compile();

            // InvokeEachAsync: the outcomes' payloads, through a generic adapter made for this build's outcome type.
            var invokeEach = clientType.GetMethod("InvokeEachAsync", [requests, fanOutOptions, typeof(CancellationToken)])!;
            var outcomeType = invokeEach.ReturnType.GetGenericArguments()[0];
            var outcome = Expression.Parameter(outcomeType);
            var outcomePayload = Expression.Lambda(Expression.Property(Expression.Call(outcome, "GetResponseOrThrow", null), "Payload"), outcome).Compile();
            var count64 = Expression.Parameter(typeof(long));
            var stream = Expression.Call(Expression.Convert(c, clientType), invokeEach,
                Expression.Call(typeof(Enumerable), nameof(Enumerable.Cast), [requestType],
                    Expression.Call(typeof(LibraryWays), nameof(Requests), null, Expression.Constant(_request), count64)),
                makeOptions, Expression.Default(typeof(CancellationToken)));
            var adapt = typeof(LibraryWays).GetMethod(nameof(Payloads), BindingFlags.NonPublic | BindingFlags.Static)!.MakeGenericMethod(outcomeType);
            _invokeEach = Expression.Lambda<Func<object, long, int, IAsyncEnumerable<ReadOnlyMemory<byte>>>>(
                Expression.Call(adapt, stream, Expression.Constant(outcomePayload)), c, count64, n).Compile();

            var invoke = clientType.GetMethod("InvokeAsync", [requestType, typeof(CancellationToken)])!;
            var one = Expression.Parameter(typeof(object));
            var token = Expression.Parameter(typeof(CancellationToken));
            _invoke = Expression.Lambda<Func<object, object, CancellationToken, Task>>(
                Expression.Call(Expression.Convert(c, clientType), invoke, Expression.Convert(one, requestType), token), c, one, token).Compile();
            _invokePayload = Expression.Lambda<Func<Task, ReadOnlyMemory<byte>>>(
                Expression.Property(Expression.Property(Expression.Convert(task, typeof(Task<>).MakeGenericType(responseType)), "Result"), "Payload"), task).Compile();
        }

        private static void Set(object target, string property, object? value) => target.GetType().GetProperty(property)!.SetValue(target, value);

        private static IEnumerable<object> Requests(Func<string, byte[], object> make, long count)
        {
            for (long i = 0; i < count; i++) yield return make(FanOutInput.FunctionName(i), FanOutInput.Payload(i));
        }

        private static async IAsyncEnumerable<ReadOnlyMemory<byte>> Payloads<TOutcome>(IAsyncEnumerable<TOutcome> outcomes, Func<TOutcome, ReadOnlyMemory<byte>> payload)
        {
            await foreach (var outcome in outcomes.ConfigureAwait(false)) yield return payload(outcome);
        }

        public async Task<int> InvokeAllAsync()
        {
            var pending = _invokeAll(_client, Requests(_request, _count), _concurrency);
            await pending.ConfigureAwait(false);
            int read = 0;
            foreach (var payload in _allPayloads(pending)) { FastFanOut.ReadAnswer(payload.Span); read++; }
            return Counted(read);
        }

        public async Task<int> InvokeEachAsync()
        {
            int read = 0;
            await foreach (var payload in _invokeEach(_client, _count, _concurrency).ConfigureAwait(false)) { FastFanOut.ReadAnswer(payload.Span); read++; }
            return Counted(read);
        }

        public async Task<int> InvokeInParallelForEachAsync()
        {
            var payloads = new ReadOnlyMemory<byte>[_count];
            await Parallel.ForEachAsync(Enumerable.Range(0, _count), new ParallelOptions { MaxDegreeOfParallelism = _concurrency }, async (i, cancellationToken) =>
            {
                var pending = _invoke(_client, _request(FanOutInput.FunctionName(i), FanOutInput.Payload(i)), cancellationToken);
                await pending.ConfigureAwait(false);
                var payload = _invokePayload(pending);
                FastFanOut.ReadAnswer(payload.Span);
                payloads[i] = payload;
            }).ConfigureAwait(false);
            return payloads.Length;
        }

        private int Counted(int read) => read == _count ? read : throw new InvalidOperationException($"{read} of {_count} invocations came back.");

        public void Dispose() => ((IDisposable)_client).Dispose();
    }
}
