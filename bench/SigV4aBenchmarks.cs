using BenchmarkDotNet.Attributes;

namespace SigV4Lite.Bench;

/// <summary>
/// SigV4a (ECDSA P-256) beside SigV4 on the Lambda request, precomputed payload hash: with the derived private
/// key cached in the credentials (the same <see cref="AwsCredentials"/> each call), and with the key derived
/// afresh (new credentials each call, the cost of the first signature with new credentials).
/// </summary>
[MemoryDiagnoser]
public class SigV4aBenchmarks
{
    private readonly AwsCredentials _credentials = LambdaRequest.Credentials();
    private readonly SigV4Options _v4 = new(LambdaRequest.Service, LambdaRequest.Region);
    private readonly SigV4Options _v4a = new(LambdaRequest.Service, LambdaRequest.Region) { Algorithm = SigningAlgorithm.SigV4a };
    private string _payloadHash = "";

    [GlobalSetup]
    public void Setup() => _payloadHash = SigV4.HashPayload(LambdaRequest.Body);

    [GlobalCleanup]
    public void Cleanup() => _credentials.Dispose();

    [Benchmark(Baseline = true, Description = "SigV4")]
    public int SigV4Sign() => Sign(_credentials, _v4);

    [Benchmark(Description = "SigV4a, cached key")]
    public int SigV4aCachedKey() => Sign(_credentials, _v4a);

    [Benchmark(Description = "SigV4a, key derived (new credentials)")]
    public int SigV4aNewKey()
    {
        using var credentials = LambdaRequest.Credentials();
        return Sign(credentials, _v4a);
    }

    private int Sign(AwsCredentials credentials, SigV4Options options) =>
        SigV4.Sign("POST", LambdaRequest.Path, "", LambdaRequest.Headers, _payloadHash, LambdaRequest.Time, credentials, options).Authorization!.Length;
}
