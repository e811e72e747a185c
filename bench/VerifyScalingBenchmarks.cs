using BenchmarkDotNet.Attributes;

namespace SigV4Lite.Bench;

/// <summary>
/// <see cref="SigV4Verifier.Verify"/> on a header-signed request of 16 KB to 1 MB (half in distinct query
/// parameters, half in distinct signed headers), whose parameters and headers arrive sorted, reversed or shuffled:
/// the verification time should grow in proportion to the size (n log n), whatever the order. The verifier's limits
/// are raised to let these sizes through (by default it refuses anything over 64 KiB before any other work).
/// </summary>
[MemoryDiagnoser]
public class VerifyScalingBenchmarks
{
    public enum Order { Sorted, Reversed, Random }

    private static readonly DateTimeOffset Time = new(2025, 1, 15, 12, 30, 45, TimeSpan.Zero);

    private readonly AwsCredentials _credentials = LambdaRequest.Credentials();
    private SigV4Verifier _verifier = null!;
    private string _query = "";
    private List<KeyValuePair<string, string>> _headers = [];

    [Params(16 * 1024, 64 * 1024, 256 * 1024, 1024 * 1024)]
    public int Size { get; set; }

    [Params(Order.Sorted, Order.Reversed, Order.Random)]
    public Order Arrival { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var options = new SigV4Options("service", "us-east-1");
        var (query, headers) = Request(Size, Arrival);
        var signature = SigV4.Sign("GET", "/", query, headers, SigV4.EmptyPayloadHash, Time, _credentials, options);
        _query = query;
        _headers = [.. headers, .. signature.HeadersToAdd];
        _verifier = new SigV4Verifier(_ => _credentials, options)
        {
            Clock = new FixedClock(Time),
            MaxHeaderCount = int.MaxValue,
            MaxRequestHeadLength = int.MaxValue,
        };
        var result = _verifier.Verify("GET", "/", _query, _headers, []);
        if (!result.IsValid) throw new InvalidOperationException("The benchmark's request does not verify: " + result.Message);
    }

    [Benchmark(Description = "Verify")]
    public bool Verify() => _verifier.Verify("GET", "/", _query, _headers, []).IsValid;

    // Half the size in query parameters "p000000=vvvvvvvv" (17 characters with the '&'), half in headers
    // "x-amz-meta-000000: vvvvvvvvvvvvvvvv" (33 characters of name and value).
    internal static (string Query, List<KeyValuePair<string, string>> Headers) Request(int size, Order order)
    {
        int parameters = size / 2 / 17, headers = size / 2 / 33;
        var parameterList = Arrange(Enumerable.Range(0, parameters).Select(i => $"p{i:D6}=v{i:D7}").ToList(), order);
        var headerList = Arrange(Enumerable.Range(0, headers).Select(i => new KeyValuePair<string, string>($"x-amz-meta-{i:D6}", $"value-{i:D10}")).ToList(), order);
        headerList.Insert(0, new("Host", "example.amazonaws.com"));
        return (string.Join('&', parameterList), headerList);
    }

    private static readonly Random Shuffle = new(20261129);

    private static List<T> Arrange<T>(List<T> sorted, Order order) => order switch
    {
        Order.Sorted => sorted,
        Order.Reversed => Enumerable.Reverse(sorted).ToList(),
        _ => sorted.OrderBy(_ => Shuffle.Next()).ToList(),
    };

    private sealed class FixedClock(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}
