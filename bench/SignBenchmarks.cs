using System.Net.Http.Headers;
using BenchmarkDotNet.Attributes;

namespace SigV4Lite.Bench;

/// <summary>
/// Signing the Lambda Invoke request through SigV4Lite's two entry points: the plain-values
/// <see cref="SigV4.Sign"/> (reading Authorization and AmzDate from the result) and <see cref="SigV4.SignAsync"/>
/// on an <see cref="HttpRequestMessage"/> built per call. The signing key is cached in the credentials after the
/// first call, as it is in any long-lived client.
/// </summary>
[MemoryDiagnoser]
public class SignBenchmarks
{
    private readonly AwsCredentials _credentials = LambdaRequest.Credentials();
    private readonly AwsCredentials _credentialsWithToken = LambdaRequest.CredentialsWithToken();
    private readonly SigV4Options _options = LambdaRequest.Options();
    private readonly Uri _uri = new(LambdaRequest.Url);
    private readonly MediaTypeHeaderValue _contentType = new(LambdaRequest.ContentType);
    private string _payloadHash = "";

    [GlobalSetup]
    public void Setup() => _payloadHash = SigV4.HashPayload(LambdaRequest.Body);

    [Benchmark(Baseline = true, Description = "Sign, precomputed payload hash")]
    public int Sign() => Read(SigV4.Sign("POST", LambdaRequest.Path, "", LambdaRequest.Headers, _payloadHash, LambdaRequest.Time, _credentials, _options));

    [Benchmark(Description = "Sign, HashPayload each call")]
    public int SignHashingBody() => Read(SigV4.Sign("POST", LambdaRequest.Path, "", LambdaRequest.Headers, SigV4.HashPayload(LambdaRequest.Body), LambdaRequest.Time, _credentials, _options));

    [Benchmark(Description = "Sign, precomputed hash, session token")]
    public int SignWithToken() => Read(SigV4.Sign("POST", LambdaRequest.Path, "", LambdaRequest.Headers, _payloadHash, LambdaRequest.Time, _credentialsWithToken, _options));

    [Benchmark(Description = "Sign, HashPayload each call, session token")]
    public int SignHashingBodyWithToken() => Read(SigV4.Sign("POST", LambdaRequest.Path, "", LambdaRequest.Headers, SigV4.HashPayload(LambdaRequest.Body), LambdaRequest.Time, _credentialsWithToken, _options));

    [Benchmark(Description = "SignAsync, new HttpRequestMessage")]
    public async Task<int> SignAsyncRequest()
    {
        using var request = NewRequest();
        return Read(await SigV4.SignAsync(request, _credentials, _options));
    }

    [Benchmark(Description = "SignAsync, new HttpRequestMessage, session token")]
    public async Task<int> SignAsyncRequestWithToken()
    {
        using var request = NewRequest();
        return Read(await SigV4.SignAsync(request, _credentialsWithToken, _options));
    }

    [Benchmark(Description = "new HttpRequestMessage only (no signing)")]
    public int NewRequestOnly()
    {
        using var request = NewRequest();
        return request.Content!.Headers.ContentType!.MediaType!.Length;
    }

    private HttpRequestMessage NewRequest() => new(HttpMethod.Post, _uri)
    {
        Content = new ByteArrayContent(LambdaRequest.Body) { Headers = { ContentType = _contentType } },
    };

    private static int Read(SigV4Signature signature) => signature.Authorization!.Length + signature.AmzDate.Length;
}
