using Amazon.Runtime.Signing;

namespace SigV4Lite.Bench;

/// <summary>
/// Checks that SigV4Lite and AWSSDK.Core sign the benchmark's request identically (same inputs, same time), so
/// that the comparison measures the same work. Run with <c>--verify</c>; the SDK benchmarks also run it in setup.
/// AWSSDK.Core always signs an <c>x-amz-content-sha256</c> header, so ours is asked to add one too.
/// </summary>
internal static class Verify
{
    public static bool Run(TextWriter log)
    {
        bool ok = true;
        foreach (bool withToken in new[] { false, true })
        foreach (bool precomputedHash in new[] { false, true })
        {
            string what = (withToken ? "with session token" : "without session token") + (precomputedHash ? ", precomputed hash" : ", body hashed");
            var request = AwsSdk.Request(precomputedHash);
            int headersBefore = request.Headers.Count;
            var sdk = AWSSigV4Signer.Sign(request, AwsSdk.Parameters(withToken)).Headers;
            var ours = SigV4.Sign("POST", LambdaRequest.Path, "", LambdaRequest.Headers, SigV4.HashPayload(LambdaRequest.Body),
                LambdaRequest.Time, withToken ? LambdaRequest.CredentialsWithToken() : LambdaRequest.Credentials(), AwsSdk.SameOptions);

            var expected = ours.HeadersToAdd.ToDictionary(h => h.Key, h => h.Value, StringComparer.OrdinalIgnoreCase);
            bool same = sdk.Count == expected.Count && sdk.All(h => expected.TryGetValue(h.Key, out var v) && v == h.Value);
            bool untouched = request.Headers.Count == headersBefore;
            log.WriteLine($"{(same ? "same" : "DIFFERENT")}: {what}");
            if (!same)
            {
                foreach (var (name, value) in sdk) log.WriteLine($"  AWSSDK.Core {name}: {Shown(name, value)}");
                foreach (var (name, value) in expected) log.WriteLine($"  SigV4Lite   {name}: {Shown(name, value)}");
            }
            if (!untouched) log.WriteLine($"  AWSSDK.Core changed the request's headers ({headersBefore} -> {request.Headers.Count}): the benchmark must build a request per call");
            ok &= same && untouched;
        }
        log.WriteLine(ok ? "AWSSDK.Core and SigV4Lite give the same headers." : "AWSSDK.Core and SigV4Lite differ.");
        return ok;
    }

    private static string Shown(string name, string value) =>
        name.Contains("token", StringComparison.OrdinalIgnoreCase) ? $"({value.Length} characters)" : value;
}
