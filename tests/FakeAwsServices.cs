using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace SigV4Lite.Tests;

/// <summary>
/// A loopback AWS service: every request must be validly signed for its signing name and region (checked with
/// SigV4Verifier), then the handler answers it with the service's own success and error shapes.
/// </summary>
public sealed class FakeAwsService : IAsyncDisposable
{
    public const string Region = "us-east-1";
    public static readonly AwsCredentials Credentials = new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");

    private readonly SigV4Verifier _verifier;
    private int _calls;

    public FakeAwsService(string signingName, Func<ReceivedRequest, int, Reply> handler, TimeProvider? clock = null)
    {
        _verifier = new SigV4Verifier(id => id == Credentials.AccessKeyId ? Credentials : null, new SigV4Options(signingName, Region)) { Clock = clock ?? TimeProvider.System };
        Server = new FakeHttpServer(request =>
        {
            var result = _verifier.Verify(request.Method, request.Path, request.Query, request.Headers, request.Body);
            if (!result.IsValid)
            {
                SignatureFailures.Enqueue(result.Error + ": " + result.Message);
                return WithDate(new Reply(403, $$"""{"__type":"InvalidSignatureException","message":"{{JsonEncodedText.Encode(result.Message)}}"}"""), clock);
            }
            return WithDate(handler(request, Interlocked.Increment(ref _calls)), clock);
        });
    }

    // AWS's answers carry its clock in Date: a fake on a clock of its own says so.
    private static Reply WithDate(Reply reply, TimeProvider? clock) =>
        clock is null ? reply : reply with { Headers = [.. reply.Headers, new("Date", clock.GetUtcNow().ToString("r", CultureInfo.InvariantCulture))] };

    public FakeHttpServer Server { get; }
    public Uri Url => Server.Url;
    public int Calls => Volatile.Read(ref _calls);
    public ConcurrentQueue<string> SignatureFailures { get; } = new();

    public AwsClient Client(AwsService service, int? maxAttempts = null, AwsConfigOptions? config = null, TimeProvider? clock = null) =>
        new(service, new AwsClientOptions
        {
            Region = Region,
            Endpoint = Url,
            Credentials = Credentials,
            RetryBaseDelay = TimeSpan.FromMilliseconds(2),
            MaxAttempts = maxAttempts,
            Config = config ?? new AwsConfigOptions { GetEnvironmentVariable = _ => null, HomeDirectory = Path.GetTempPath() },
            Clock = clock,
        });

    public ValueTask DisposeAsync() => Server.DisposeAsync();

    // awsJson error: {"__type": "prefix#Code", "message": "..."} with x-amzn-RequestId.
    public static Reply JsonError(int status, string type, string message, params KeyValuePair<string, string>[] headers) =>
        new Reply(status, $$"""{"__type":"{{type}}","message":"{{message}}"}""", "application/x-amz-json-1.0")
        {
            Headers = [new("x-amzn-RequestId", "REQ-" + type.GetHashCode().ToString("X", CultureInfo.InvariantCulture)), .. headers],
        };

    // awsQuery error, as STS, SNS and IAM write it.
    public static Reply QueryError(int status, string code, string message) => new(status, $"""
        <ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
          <Error>
            <Type>Sender</Type>
            <Code>{code}</Code>
            <Message>{message}</Message>
          </Error>
          <RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId>
        </ErrorResponse>
        """, "text/xml");

    // S3's error document, with its request ids in headers too.
    public static Reply S3Error(int status, string code, string message) => new Reply(status, $"""
        <?xml version="1.0" encoding="UTF-8"?>
        <Error><Code>{code}</Code><Message>{message}</Message><RequestId>4442587FB7D0A2F9</RequestId><HostId>host-id-2</HostId></Error>
        """, "application/xml")
    {
        Headers = [new("x-amz-request-id", "4442587FB7D0A2F9"), new("x-amz-id-2", "host-id-2")],
    };

    public static string Utf8(ReceivedRequest request) => Encoding.UTF8.GetString(request.Body);
}
