using Amazon;
using Amazon.Runtime;
using Amazon.Runtime.Signing;

namespace SigV4Lite.Bench;

/// <summary>The same Lambda request, for the AWS SDK for .NET's own public signer (AWSSDK.Core 4.x, AWSSigV4Signer).</summary>
internal static class AwsSdk
{
    /// <summary>The request; with <paramref name="precomputedHash"/> the body's hash is given in
    /// <c>x-amz-content-sha256</c>, which the SDK then signs as is instead of reading the body.</summary>
    public static AWSSigningRequest Request(bool precomputedHash)
    {
        var request = new AWSSigningRequest
        {
            HttpMethod = HttpMethod.Post,
            RequestUri = new Uri(LambdaRequest.Url),
            Content = LambdaRequest.Body,
        };
        request.Headers["Content-Type"] = LambdaRequest.ContentType;
        if (precomputedHash) request.Headers["x-amz-content-sha256"] = SigV4.HashPayload(LambdaRequest.Body);
        return request;
    }

    public static AWSSigV4Parameters Parameters(bool withToken) => new()
    {
        Credentials = withToken
            ? new SessionAWSCredentials(LambdaRequest.AccessKeyId, LambdaRequest.SecretAccessKey, LambdaRequest.SessionToken)
            : new BasicAWSCredentials(LambdaRequest.AccessKeyId, LambdaRequest.SecretAccessKey),
        Region = RegionEndpoint.USEast1,
        Service = LambdaRequest.Service,
        SignedAt = LambdaRequest.Time.UtcDateTime,
    };

    /// <summary>SigV4Lite's options for the canonical request the SDK signs: it always adds x-amz-content-sha256.</summary>
    public static readonly SigV4Options SameOptions = new(LambdaRequest.Service, LambdaRequest.Region) { AddContentSha256Header = true };
}
