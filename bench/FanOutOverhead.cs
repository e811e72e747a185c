using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;

namespace SigV4Lite.Bench;

/// <summary>
/// <c>--fanout-overhead [rounds]</c>: issue 10's four ways with no network: every way's HttpClient or LambdaClient sends
/// to an in-process handler that answers at once with the fast mock's answer (same headers, same body). What is left is
/// the client's own CPU per call, without the kernel, the mock or the scheduler: the library against the floors, turn by
/// turn in one process, 2,000 calls at 256 a round.
/// </summary>
internal static class FanOutOverhead
{
    public static int Run(TextWriter output, int rounds, string? only = null, bool yielding = false)
    {
        const int count = 2_000, concurrency = 256;
        var endpoint = new Uri("http://127.0.0.1:9/");
        using var client = new LambdaClient(new AwsClientOptions
        {
            Region = "us-east-1",
            Endpoint = endpoint,
            Credentials = FanOutInput.Credentials(),
            HttpHandler = new CannedLambdaHandler(yielding),
        });
        using var http = new HttpClient(new CannedLambdaHandler(yielding)) { Timeout = Timeout.InfiniteTimeSpan };
        var methods = FastFanOut.Methods(endpoint, client, http, count, concurrency);
        for (int i = 0; i < 300; i++)
            foreach (var (_, run) in methods) run().GetAwaiter().GetResult();
        if (only is not null) return Profile(output, methods.Single(m => m.Name.StartsWith(only, StringComparison.Ordinal)).Run, rounds);

        var cpu = new List<double>[methods.Length];
        var bytes = new long[methods.Length];
        for (int m = 0; m < methods.Length; m++) cpu[m] = [];
        using var self = Process.GetCurrentProcess();
        for (int round = 0; round < rounds; round++)
        {
            for (int k = 0; k < methods.Length; k++)
            {
                int m = (k + round) % methods.Length; // a different way first each round
                self.Refresh();
                var before = self.TotalProcessorTime;
                long allocated = GC.GetTotalAllocatedBytes(precise: true);
                methods[m].Run().GetAwaiter().GetResult();
                bytes[m] += GC.GetTotalAllocatedBytes(precise: true) - allocated;
                self.Refresh();
                cpu[m].Add((self.TotalProcessorTime - before).TotalMicroseconds / count);
            }
        }
        output.WriteLine($"{count:N0} calls at {concurrency}, {rounds} rounds, in-process answers (no network{(yielding ? "; each answer from the thread pool" : "")}); load average {FanOutInterleaved.LoadAverage()}");
        output.WriteLine();
        // Medians of each round's difference: the machine's speed drifts from second to second, a round's ways run together.
        output.WriteLine("| way | CPU per call (median of rounds) | above the unsigned floor (median of rounds) | above the signed floor (median of rounds) | allocated per call |");
        output.WriteLine("|---|---:|---:|---:|---:|");
        for (int m = 0; m < methods.Length; m++)
        {
            double median = FanOutInterleaved.Median(cpu[m]);
            double aboveFloor = FanOutInterleaved.Median(cpu[m].Zip(cpu[0], (a, b) => a - b).ToList());
            double aboveSigned = FanOutInterleaved.Median(cpu[m].Zip(cpu[1], (a, b) => a - b).ToList());
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {methods[m].Name} | {median:F2} µs | {aboveFloor:+0.00;-0.00;0.00} µs | {aboveSigned:+0.00;-0.00;0.00} µs | {bytes[m] / (double)rounds / count:N0} B |"));
        }
        return 0;
    }

    /// <summary>The in-process answerer, for the A/B run (<see cref="AbRun"/>).</summary>
    public static HttpMessageHandler CannedHandler(bool yielding) => new CannedLambdaHandler(yielding);

    // One way, round after round, for `perf record -p` (the pid is printed once the warm-up is over).
    private static int Profile(TextWriter output, Func<Task<int>> run, int rounds)
    {
        output.WriteLine($"// measuring from now (pid {Environment.ProcessId})");
        output.Flush();
        for (int round = 0; round < rounds; round++) run().GetAwaiter().GetResult();
        return 0;
    }

    /// <summary>Answers every request at once as the fast mock does: 200, the mock's headers and 58-byte body.</summary>
    private sealed class CannedLambdaHandler(bool yielding) : HttpMessageHandler
    {
        private static readonly byte[] Body = Encoding.UTF8.GetBytes(LambdaMock.Body);
        private static readonly MediaTypeHeaderValue Json = new("application/json");

        private static int s_requests;

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
            yielding ? AnswerLaterAsync(request) : Task.FromResult(Answer(request));

        // As a network answer does: the call suspends and goes on from the thread pool.
        private static async Task<HttpResponseMessage> AnswerLaterAsync(HttpRequestMessage request)
        {
            await Task.Yield();
            return Answer(request);
        }

        private static HttpResponseMessage Answer(HttpRequestMessage request)
        {
            var response = new HttpResponseMessage(HttpStatusCode.OK) { RequestMessage = request, Content = new ByteArrayContent(Body) };
            response.Content.Headers.ContentType = Json;
            response.Content.Headers.ContentLength = Body.Length;
            // A fresh request id without Guid.NewGuid's system call, which would be most of the floor's cost.
            response.Headers.TryAddWithoutValidation("x-amzn-RequestId", new Guid(Interlocked.Increment(ref s_requests), 0x4e1f, 0x4c2a, 0x9b, 0x6e, 0x1d, 0x7a, 0x3c, 0x55, 0x80, 0x12).ToString());
            response.Headers.TryAddWithoutValidation("X-Amz-Executed-Version", "$LATEST");
            response.Headers.TryAddWithoutValidation("Date", "Sun, 29 Nov 2026 12:00:00 GMT");
            return response;
        }
    }
}
