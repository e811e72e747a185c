using System.Security.Cryptography;
using System.Text;
using BenchmarkDotNet.Attributes;

namespace SigV4Lite.Bench;

/// <summary>
/// The floor: only the cryptographic work no SigV4 signer can avoid for the Lambda request, on the same bytes
/// (the canonical request and string to sign SigV4Lite builds, made once in setup): SHA-256 of the body, SHA-256
/// of the canonical request, one HMAC-SHA256 of the string to sign with the signing key already derived, and the
/// lowercase hex of the three results. Done the fastest way the BCL allows, allocating nothing: reused
/// IncrementalHash contexts (the HMAC keyed once), hashes into stack spans, hex into a stack buffer; and again
/// with the one-shot SHA256.HashData / HMACSHA256.HashData, which set up a context (and the HMAC key) per call.
/// The "without body" rows leave out the body hash: compare them with signing with a precomputed payload hash.
/// </summary>
[MemoryDiagnoser]
public class CryptoFloorBenchmarks
{
    private byte[] _canonicalRequest = [];
    private byte[] _stringToSign = [];
    private byte[] _signingKey = [];
    private IncrementalHash _sha256 = null!;
    private IncrementalHash _hmac = null!;

    [GlobalSetup]
    public void Setup()
    {
        var signature = SigV4.Sign("POST", LambdaRequest.Path, "", LambdaRequest.Headers, SigV4.HashPayload(LambdaRequest.Body),
            LambdaRequest.Time, LambdaRequest.Credentials(), LambdaRequest.Options());
        _canonicalRequest = Encoding.UTF8.GetBytes(signature.CanonicalRequest);
        _stringToSign = Encoding.UTF8.GetBytes(signature.StringToSign);
        _signingKey = SigningKey(LambdaRequest.SecretAccessKey, signature.AmzDate[..8], LambdaRequest.Region, LambdaRequest.Service);
        _sha256 = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        _hmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, _signingKey);

        // The floor must compute the real signature, or it measures something else.
        Span<char> hex = stackalloc char[64];
        FloorIncremental(hex, hashBody: true);
        if (!hex.SequenceEqual(signature.Signature))
            throw new InvalidOperationException("The floor's HMAC differs from SigV4Lite's signature: the inputs are not the same.");
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _sha256.Dispose();
        _hmac.Dispose();
    }

    [Benchmark(Baseline = true, Description = "floor: reused IncrementalHash")]
    public int Incremental()
    {
        Span<char> hex = stackalloc char[64];
        return FloorIncremental(hex, hashBody: true);
    }

    [Benchmark(Description = "floor: one-shot HashData")]
    public int OneShot()
    {
        Span<char> hex = stackalloc char[64];
        return FloorOneShot(hex, hashBody: true);
    }

    [Benchmark(Description = "floor without body: reused IncrementalHash")]
    public int IncrementalWithoutBody()
    {
        Span<char> hex = stackalloc char[64];
        return FloorIncremental(hex, hashBody: false);
    }

    [Benchmark(Description = "floor without body: one-shot HashData")]
    public int OneShotWithoutBody()
    {
        Span<char> hex = stackalloc char[64];
        return FloorOneShot(hex, hashBody: false);
    }

    // Leaves the signature's hex in hex; returns a sum over every hex result, so that none is dead code.
    private int FloorIncremental(Span<char> hex, bool hashBody)
    {
        Span<byte> hash = stackalloc byte[32];
        int sum = 0;
        if (hashBody)
        {
            _sha256.AppendData(LambdaRequest.Body);
            _sha256.GetHashAndReset(hash);
            sum += Hex(hash, hex);
        }
        _sha256.AppendData(_canonicalRequest);
        _sha256.GetHashAndReset(hash);
        sum += Hex(hash, hex);
        _hmac.AppendData(_stringToSign);
        _hmac.GetHashAndReset(hash);
        return sum + Hex(hash, hex);
    }

    private int FloorOneShot(Span<char> hex, bool hashBody)
    {
        Span<byte> hash = stackalloc byte[32];
        int sum = 0;
        if (hashBody)
        {
            SHA256.HashData(LambdaRequest.Body, hash);
            sum += Hex(hash, hex);
        }
        SHA256.HashData(_canonicalRequest, hash);
        sum += Hex(hash, hex);
        HMACSHA256.HashData(_signingKey, _stringToSign, hash);
        return sum + Hex(hash, hex);
    }

    // Lowercase hex with the BCL's vectorized encoder into a stack buffer.
    private static int Hex(ReadOnlySpan<byte> bytes, Span<char> hex)
    {
        Convert.TryToHexStringLower(bytes, hex, out int written);
        return written + hex[0];
    }

    internal static byte[] SigningKey(string secret, string date, string region, string service)
    {
        var key = HMACSHA256.HashData(Encoding.UTF8.GetBytes("AWS4" + secret), Encoding.ASCII.GetBytes(date));
        key = HMACSHA256.HashData(key, Encoding.ASCII.GetBytes(region));
        key = HMACSHA256.HashData(key, Encoding.ASCII.GetBytes(service));
        return HMACSHA256.HashData(key, "aws4_request"u8);
    }
}
