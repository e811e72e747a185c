using System.Net;
using System.Text;

namespace SigV4Lite.Bench;

/// <summary>
/// The fan-out's calls, the same for the library and the floor: invocation i goes to function
/// <c>hello-world-{i % 100}</c> with the payload <c>{"hello": i}</c> (issue 5's scenario), made when it is needed.
/// </summary>
internal static class FanOutInput
{
    public const int Functions = 100;

    private static readonly string[] Names = Enumerable.Range(0, Functions).Select(i => "hello-world-" + i).ToArray();

    public static string FunctionName(long i) => Names[i % Functions];

    public static byte[] Payload(long i) => Encoding.UTF8.GetBytes("{\"hello\": " + i + "}");

    /// <summary>The requests, generated lazily: nothing is held but the one being read.</summary>
    public static IEnumerable<SigV4Lite.LambdaRequest> Requests(long count)
    {
        for (long i = 0; i < count; i++)
            yield return new SigV4Lite.LambdaRequest(FunctionName(i), Payload(i));
    }

    /// <summary>The client every library benchmark uses: the example key, us-east-1, the emulator as endpoint, defaults otherwise.</summary>
    public static LambdaClient Client(Uri endpoint) => new(new AwsClientOptions
    {
        Region = "us-east-1",
        Endpoint = endpoint,
        Credentials = Credentials(),
    });

    public static AwsCredentials Credentials() => new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");

    /// <summary>The floor's handler, set up as the library's shared one (pooled, unlimited connections, no cookies, no decompression).</summary>
    public static HttpClient FloorClient() => new(new SocketsHttpHandler
    {
        PooledConnectionLifetime = TimeSpan.FromMinutes(5),
        MaxConnectionsPerServer = int.MaxValue,
        AutomaticDecompression = System.Net.DecompressionMethods.None,
        UseCookies = false,
    }) { Timeout = Timeout.InfiniteTimeSpan };

    /// <summary>The floor's URL for invocation i, built per call as a plain client would.</summary>
    public static string FloorUrl(string origin, long i) => string.Concat(origin, "2015-03-31/functions/", FunctionName(i), "/invocations");

    /// <summary>
    /// The floor's fan-out: the same POSTs, unsigned, <paramref name="concurrency"/> at a time (Parallel.ForEachAsync
    /// over a shared handler), each response's bytes kept in input order.
    /// </summary>
    public static async Task<int> FloorAsync(HttpClient http, string origin, int count, int concurrency)
    {
        var bodies = new byte[count][];
        await Parallel.ForEachAsync(Enumerable.Range(0, count), new ParallelOptions { MaxDegreeOfParallelism = concurrency }, async (i, cancellationToken) =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, FloorUrl(origin, i)) { Content = new ByteArrayContent(Payload(i)) };
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
            if (response.StatusCode != HttpStatusCode.OK) throw new InvalidOperationException($"Call {i} answered {(int)response.StatusCode}.");
            bodies[i] = await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
        }).ConfigureAwait(false);
        return bodies.Length;
    }

    /// <summary>InvokeAllAsync over the lazily generated requests; checks that every response came back.</summary>
    public static async Task<int> InvokeAllAsync(LambdaClient client, int count, AwsFanOutOptions options)
    {
        var responses = await client.InvokeAllAsync(Requests(count), options).ConfigureAwait(false);
        return Counted(responses.Count, count);
    }

    /// <summary>InvokeAllSettledAsync; checks that every outcome came back and succeeded.</summary>
    public static async Task<int> InvokeAllSettledAsync(LambdaClient client, int count, AwsFanOutOptions options)
    {
        var outcomes = await client.InvokeAllSettledAsync(Requests(count), options).ConfigureAwait(false);
        int failed = 0;
        foreach (var outcome in outcomes) if (!outcome.Succeeded) failed++;
        if (failed > 0) throw new InvalidOperationException($"{failed} of {count} invocations failed.");
        return Counted(outcomes.Count, count);
    }

    /// <summary>InvokeEachAsync, each outcome counted and dropped; checks that every one came back and succeeded.</summary>
    public static async Task<int> InvokeEachAsync(LambdaClient client, int count, AwsFanOutOptions options)
    {
        int succeeded = 0;
        await foreach (var outcome in client.InvokeEachAsync(Requests(count), options).ConfigureAwait(false))
            if (outcome.Succeeded) succeeded++;
        return Counted(succeeded, count);
    }

    private static int Counted(int got, int count) =>
        got == count ? got : throw new InvalidOperationException($"{got} of {count} invocations came back.");
}
