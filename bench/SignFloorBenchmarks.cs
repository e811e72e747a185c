using BenchmarkDotNet.Attributes;

namespace SigV4Lite.Bench;

/// <summary>
/// Issue 10's signing target in one class, so that a run compares them turn by turn: <see cref="SigV4.Sign"/> (the
/// plain-values entry point) against the crypto floor (<see cref="CryptoFloorBenchmarks"/>: reused IncrementalHash
/// contexts), with and without hashing the body. Sign prepares a request shape it signs twice in a row on a thread
/// (only the date, payload hash and signature are written after that); the "shape changes every call" rows alternate
/// two functions' paths, so that every signature takes the general path (validation and canonicalization).
/// </summary>
[MemoryDiagnoser]
public class SignFloorBenchmarks
{
    private const string OtherPath = "/2015-03-31/functions/hello-world-2/invocations";

    private readonly CryptoFloorBenchmarks _floor = new();
    private readonly AwsCredentials _credentials = LambdaRequest.Credentials();
    private readonly SigV4Options _options = LambdaRequest.Options();
    private string _payloadHash = "";
    private int _turn;

    [GlobalSetup]
    public void Setup()
    {
        _floor.Setup();
        _payloadHash = SigV4.HashPayload(LambdaRequest.Body);
    }

    [GlobalCleanup]
    public void Cleanup() => _floor.Cleanup();

    [Benchmark(Baseline = true, Description = "floor: reused IncrementalHash (body hashed)")]
    public int Floor() => _floor.Incremental();

    [Benchmark(Description = "floor without body: reused IncrementalHash")]
    public int FloorWithoutBody() => _floor.IncrementalWithoutBody();

    [Benchmark(Description = "Sign, HashPayload each call")]
    public int SignHashingBody() => Read(SigV4.Sign("POST", LambdaRequest.Path, "", LambdaRequest.Headers, SigV4.HashPayload(LambdaRequest.Body), LambdaRequest.Time, _credentials, _options));

    [Benchmark(Description = "Sign, precomputed payload hash")]
    public int Sign() => Read(SigV4.Sign("POST", LambdaRequest.Path, "", LambdaRequest.Headers, _payloadHash, LambdaRequest.Time, _credentials, _options));

    [Benchmark(Description = "Sign, HashPayload each call, shape changes every call")]
    public int SignHashingBodyNewShape() => Read(SigV4.Sign("POST", (_turn++ & 1) == 0 ? LambdaRequest.Path : OtherPath, "", LambdaRequest.Headers, SigV4.HashPayload(LambdaRequest.Body), LambdaRequest.Time, _credentials, _options));

    [Benchmark(Description = "Sign, precomputed hash, shape changes every call")]
    public int SignNewShape() => Read(SigV4.Sign("POST", (_turn++ & 1) == 0 ? LambdaRequest.Path : OtherPath, "", LambdaRequest.Headers, _payloadHash, LambdaRequest.Time, _credentials, _options));

    private static int Read(SigV4Signature signature) => signature.Authorization!.Length + signature.AmzDate.Length;
}
