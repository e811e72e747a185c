// AwsClient.cs: one send pipeline for any AWS API, and one fan-out engine for many calls at once. BCL only, AOT and
// trimming safe. Needs SigV4.cs and AwsConfig.cs; LambdaInvoke.cs builds on it.
//
//   using var dynamo = new AwsClient(AwsService.DynamoDB, new AwsClientOptions { Region = "us-east-1" });
//   AwsResponse item = await dynamo.SendAsync(AwsRequest.AwsJson("DynamoDB_20120810.GetItem", """{"TableName":"t","Key":{...}}"""));
//   IReadOnlyList<AwsResponse> all = await dynamo.SendAllAsync(requests, new AwsFanOutOptions { MaxConcurrency = 64 });
//
// A request passes through the pipeline once per attempt: credentials, the rate limiter (adaptive mode), the fan-out's
// concurrency limiter, signing, sending, reading the answer (capped), classifying it. Retries, the retry quota and
// clock-skew correction decide between attempts. Error answers of every AWS protocol are read into one exception,
// AwsServiceException. The file reads top-down: the values a caller sees, the exceptions, the client, the attempt,
// error reading, retry policy, the limiters, the fan-out engine, settings. Every type compiles as internal too.
#nullable enable

using System;
using System.Buffers;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.IO;
using System.Net;
using System.Net.Http;
using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using System.Threading;
using System.Threading.Channels;
using System.Threading.Tasks;

namespace SigV4Lite;

/// <summary>How failed calls are retried (<c>AWS_RETRY_MODE</c>, the profile's <c>retry_mode</c>).</summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
enum AwsRetryMode
{
    /// <summary>The AWS SDKs' standard mode: throttling and transient errors retried with full-jitter exponential
    /// backoff (capped at 20 s) and a retry quota per client. <c>legacy</c> in the configuration reads as this.</summary>
    Standard,
    /// <summary>Standard mode plus the SDKs' client-side rate limiter: once the service throttles, every attempt waits
    /// for a token from a bucket whose rate drops to 0.7x on each throttle and grows back along a cubic curve.</summary>
    Adaptive,
}

/// <summary>The wire protocol of an AWS service: how its errors are written, and which answers are errors.</summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
enum AwsProtocol
{
    /// <summary>JSON over <c>POST /</c> with <c>X-Amz-Target</c>, version 1.0 (DynamoDB, SQS).</summary>
    AwsJson1_0,
    /// <summary>JSON over <c>POST /</c> with <c>X-Amz-Target</c>, version 1.1 (Kinesis, KMS, CloudWatch Logs).</summary>
    AwsJson1_1,
    /// <summary>REST paths with JSON bodies (Lambda, API Gateway, Bedrock runtime).</summary>
    RestJson1,
    /// <summary>REST paths with XML bodies (S3, CloudFront, Route 53).</summary>
    RestXml,
    /// <summary>Form posts answered with XML (STS, SNS, IAM).</summary>
    AwsQuery,
    /// <summary>EC2's form posts answered with XML.</summary>
    Ec2Query,
}

/// <summary>
/// An AWS service as the pipeline needs it: its service id (which names its endpoint settings), its signing name, its
/// endpoint prefix and its protocol. Common ones are ready made (<see cref="Lambda"/>, <see cref="DynamoDB"/>, ...).
/// </summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
sealed class AwsService
{
    /// <summary>Describes a service.</summary>
    /// <param name="serviceId">The service id of its model, such as <c>DynamoDB</c> or <c>Secrets Manager</c>: it names
    /// <c>AWS_ENDPOINT_URL_&lt;SERVICE_ID&gt;</c> and the config files' <c>services</c> key.</param>
    /// <param name="signingName">The SigV4 signing name, such as <c>dynamodb</c> or <c>secretsmanager</c>.</param>
    /// <param name="protocol">How it writes errors.</param>
    /// <param name="endpointPrefix">The host's first label, such as <c>dynamodb</c>; null for the signing name.</param>
    /// <exception cref="ArgumentException">A name is empty or has characters a host name or signing name cannot hold.</exception>
    public AwsService(string serviceId, string signingName, AwsProtocol protocol, string? endpointPrefix = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(serviceId);
        ArgumentException.ThrowIfNullOrWhiteSpace(signingName);
        if (!IsDnsLabel(signingName))
            throw new ArgumentException($"The signing name '{signingName}' must be lowercase letters, digits and hyphens, such as dynamodb.", nameof(signingName));
        endpointPrefix ??= signingName;
        if (!IsDnsLabel(endpointPrefix))
            throw new ArgumentException($"The endpoint prefix '{endpointPrefix}' must be lowercase letters, digits and hyphens, such as dynamodb.", nameof(endpointPrefix));
        if (!Enum.IsDefined(protocol))
            throw new ArgumentOutOfRangeException(nameof(protocol), protocol, "Give one of the AwsProtocol values.");
        ServiceId = serviceId.Trim();
        SigningName = signingName;
        EndpointPrefix = endpointPrefix;
        Protocol = protocol;
    }

    /// <summary>AWS Lambda (restJson1).</summary>
    public static AwsService Lambda { get; } = new("Lambda", "lambda", AwsProtocol.RestJson1) { DefaultTimeout = TimeSpan.FromMinutes(16) };
    /// <summary>Amazon DynamoDB (awsJson1_0).</summary>
    public static AwsService DynamoDB { get; } = new("DynamoDB", "dynamodb", AwsProtocol.AwsJson1_0);
    /// <summary>Amazon SQS (awsJson1_0, with its legacy query error codes).</summary>
    public static AwsService Sqs { get; } = new("SQS", "sqs", AwsProtocol.AwsJson1_0);
    /// <summary>AWS STS (awsQuery).</summary>
    public static AwsService Sts { get; } = new("STS", "sts", AwsProtocol.AwsQuery);
    /// <summary>Amazon S3 (restXml). Paths are the key encoded once, as S3 signs them.</summary>
    public static AwsService S3 { get; } = new("S3", "s3", AwsProtocol.RestXml);

    /// <summary>The service id, such as <c>DynamoDB</c>.</summary>
    public string ServiceId { get; }
    /// <summary>The signing name, such as <c>dynamodb</c>.</summary>
    public string SigningName { get; }
    /// <summary>The endpoint prefix, such as <c>dynamodb</c>.</summary>
    public string EndpointPrefix { get; }
    /// <summary>The protocol.</summary>
    public AwsProtocol Protocol { get; }

    /// <summary>How long one attempt may take when <see cref="AwsClientOptions.Timeout"/> is not set: 100 seconds, 16 minutes
    /// for <see cref="Lambda"/> (a synchronous invocation runs up to 15).</summary>
    public TimeSpan DefaultTimeout
    {
        get => _defaultTimeout;
        init
        {
            AttemptTimeouts.Validate(value, nameof(DefaultTimeout));
            _defaultTimeout = value;
        }
    }

    private readonly TimeSpan _defaultTimeout = TimeSpan.FromSeconds(100);

    /// <summary>The service id.</summary>
    public override string ToString() => ServiceId;

    private static bool IsDnsLabel(string value)
    {
        if (value.Length is 0 or > 63 || value[0] == '-' || value[^1] == '-') return false;
        foreach (char c in value)
            if (!(c is >= 'a' and <= 'z' or >= '0' and <= '9' or '-')) return false;
        return true;
    }
}

/// <summary>Settings of an <see cref="AwsClient"/> (and of a <c>LambdaClient</c>). Every property is optional.</summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
sealed class AwsClientOptions
{
    /// <summary>The region, such as <c>us-east-1</c>. Null resolves it as the AWS SDKs do: <c>AWS_REGION</c>, then
    /// <c>AWS_DEFAULT_REGION</c>, then the profile's <c>region</c>; the client cannot be made without one.</summary>
    public string? Region { get; init; }

    /// <summary>A custom endpoint (an emulator, a VPC endpoint): an absolute http or https URL without a query; its path,
    /// if any, prefixes every request's. Null resolves it as the AWS SDKs do: <c>AWS_ENDPOINT_URL_&lt;SERVICE_ID&gt;</c>,
    /// <c>AWS_ENDPOINT_URL</c>, the profile's <c>services</c> section and <c>endpoint_url</c>; else the region's endpoint.</summary>
    public Uri? Endpoint { get; init; }

    /// <summary>Use the FIPS endpoint (<c>{prefix}-fips.{region}...</c>); ignored with a custom endpoint. Null reads
    /// <c>AWS_USE_FIPS_ENDPOINT</c>, then the profile's <c>use_fips_endpoint</c>; off when neither is set.</summary>
    public bool? UseFIPSEndpoint { get; init; }

    /// <summary>Use the dual-stack (IPv4 and IPv6) endpoint; ignored with a custom endpoint. Null reads
    /// <c>AWS_USE_DUALSTACK_ENDPOINT</c>, then the profile's <c>use_dualstack_endpoint</c>; off when neither is set.</summary>
    public bool? UseDualstackEndpoint { get; init; }

    /// <summary>Where credentials come from. Null uses the AWS SDKs' default chain (<see cref="AwsCredentialsChain.CreateDefault"/>),
    /// first read by the first call, on this client's <see cref="Clock"/>.</summary>
    public IAwsCredentialsProvider? Credentials { get; init; }

    /// <summary>Where the settings left null are looked for: environment variables, profile, home directory. Null for the
    /// real ones.</summary>
    public AwsConfigOptions? Config { get; init; }

    /// <summary>A handler to send with (your own <c>SocketsHttpHandler</c>, or IHttpClientFactory's
    /// <c>IHttpMessageHandlerFactory.CreateHandler(name)</c>); the client does not dispose it. Redirects are turned off
    /// at the end of its chain before the first send, since a redirect would carry the session token and the body to
    /// whatever host it names: a handler that follows redirects and has already sent is refused (configure it with
    /// <c>AllowAutoRedirect = false</c>). Null uses one pooled handler shared by the process: it follows no redirect and
    /// keeps idle connections alive with TCP keep-alive probes, so that a 15-minute call survives a NAT gateway.</summary>
    public HttpMessageHandler? HttpHandler { get; init; }

    /// <summary>Standard or adaptive retries. Null reads <c>AWS_RETRY_MODE</c>, then the profile's <c>retry_mode</c>;
    /// standard when neither is set.</summary>
    public AwsRetryMode? RetryMode { get; init; }

    /// <summary>Attempts per call, the first included; 1 turns retries off. Null reads <c>AWS_MAX_ATTEMPTS</c>, then the
    /// profile's <c>max_attempts</c>; 3 when neither is set.</summary>
    public int? MaxAttempts { get; init; }

    /// <summary>The base of the backoff: the delay before retry i is random below min(base * 2^(i-1), 20 s). 1 second by default.</summary>
    public TimeSpan RetryBaseDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>How long one attempt may take (sending, the service's work, reading the answer) before it fails with an
    /// <see cref="AwsTimeoutException"/>. Null: 16 minutes for Lambda (its longest run is 15), 100 seconds for other
    /// services. <see cref="System.Threading.Timeout.InfiniteTimeSpan"/>, or anything over 49 days, means no limit.</summary>
    public TimeSpan? Timeout { get; init; }

    /// <summary>The largest answer read, in bytes: a longer one fails with an <see cref="AwsResponseTooLargeException"/>
    /// before it is buffered. Null: 64 MiB (Lambda's client sets its own, from Lambda's payload limits).</summary>
    public long? MaxResponseSize { get; init; }

    /// <summary>The clock for signing, retry delays, timeouts and credential refreshes (the default chain's too). Null
    /// uses <see cref="AwsConfigOptions.Clock"/> of <see cref="Config"/>, else <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider? Clock { get; init; }
}

/// <summary>
/// One AWS API request, in any protocol: method, path and query as sent (percent-encoded), headers and body. The
/// pipeline adds the host, date, token and signature. Helpers build the common shapes: <see cref="AwsJson(string, string, string)"/>,
/// <see cref="AwsQuery"/>; REST requests use the constructor. An instance can be sent any number of times.
/// </summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
sealed class AwsRequest
{
    /// <summary>Creates a request.</summary>
    /// <param name="method">The HTTP method.</param>
    /// <param name="path">The path as sent, percent-encoded, starting with <c>/</c>, such as <c>/my-bucket/my%20key</c>.</param>
    /// <param name="query">The query as sent, percent-encoded, without the <c>?</c>; empty for none.</param>
    public AwsRequest(HttpMethod method, string path = "/", string query = "")
    {
        Method = method ?? throw new ArgumentNullException(nameof(method));
        Path = path ?? throw new ArgumentNullException(nameof(path));
        Query = query ?? throw new ArgumentNullException(nameof(query));
    }

    /// <summary>The HTTP method.</summary>
    public HttpMethod Method { get; }

    /// <summary>The path as sent, percent-encoded; the endpoint's own path, if any, goes before it.</summary>
    public string Path { get; }

    /// <summary>The query as sent, percent-encoded, without the <c>?</c>.</summary>
    public string Query { get; }

    /// <summary>Headers to send and sign (not <c>Host</c>, which the pipeline sets).</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Headers { get; init; } = Array.Empty<KeyValuePair<string, string>>();

    /// <summary>The body, sent as is.</summary>
    public ReadOnlyMemory<byte> Body { get; init; }

    /// <summary>The body's <c>Content-Type</c>, sent and signed; null for none.</summary>
    public string? ContentType { get; init; }

    /// <summary>The operation's name, such as <c>GetItem</c>: shown in errors and decides protocol rules that depend
    /// on it (S3's CopyObject can fail with HTTP 200).</summary>
    public string? OperationName { get; init; }

    /// <summary>Overrides <see cref="AwsClientOptions.Timeout"/> for this request: the limit of one attempt.</summary>
    public TimeSpan? Timeout { get; init; }

    // The Lambda function a request invokes, for the span's faas.invoked_name.
    internal string? InvokedFunction { get; init; }

    /// <summary>An awsJson request: <c>POST /</c> with <c>X-Amz-Target</c> and <c>application/x-amz-json-{version}</c>.</summary>
    /// <param name="target">The target, such as <c>DynamoDB_20120810.GetItem</c> or <c>AmazonSQS.SendMessage</c>.</param>
    /// <param name="json">The body.</param>
    /// <param name="jsonVersion"><c>1.0</c> (DynamoDB, SQS) or <c>1.1</c> (Kinesis, KMS, Secrets Manager, ...).</param>
    /// <exception cref="ArgumentException">The target has no <c>.</c>, or the version is not 1.0 or 1.1.</exception>
    public static AwsRequest AwsJson(string target, ReadOnlyMemory<byte> json, string jsonVersion = "1.0")
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(target);
        int dot = target.LastIndexOf('.');
        if (dot <= 0 || dot == target.Length - 1)
            throw new ArgumentException($"The target '{target}' must be <TargetPrefix>.<Operation>, such as DynamoDB_20120810.GetItem.", nameof(target));
        if (jsonVersion is not ("1.0" or "1.1"))
            throw new ArgumentException($"The awsJson version must be 1.0 or 1.1; it was '{jsonVersion}'.", nameof(jsonVersion));
        return new AwsRequest(HttpMethod.Post)
        {
            Headers = [new("X-Amz-Target", target)],
            ContentType = jsonVersion == "1.0" ? "application/x-amz-json-1.0" : "application/x-amz-json-1.1",
            Body = json,
            OperationName = target[(dot + 1)..],
        };
    }

    /// <summary>An awsJson request with a text body, sent as UTF-8.</summary>
    /// <inheritdoc cref="AwsJson(string, ReadOnlyMemory{byte}, string)"/>
    public static AwsRequest AwsJson(string target, string json, string jsonVersion = "1.0") =>
        AwsJson(target, Encoding.UTF8.GetBytes(json ?? throw new ArgumentNullException(nameof(json))), jsonVersion);

    /// <summary>An awsJson request whose body is a value serialized by source-generated metadata (AOT and trimming safe).</summary>
    /// <param name="target">The target, such as <c>DynamoDB_20120810.GetItem</c>.</param>
    /// <param name="value">The input, such as a GetItem request shape of your own.</param>
    /// <param name="typeInfo">Its metadata, such as <c>MyJsonContext.Default.GetItemInput</c>.</param>
    /// <param name="jsonVersion"><c>1.0</c> or <c>1.1</c>, as the service speaks.</param>
    /// <inheritdoc cref="AwsJson(string, ReadOnlyMemory{byte}, string)"/>
    public static AwsRequest AwsJson<T>(string target, T value, JsonTypeInfo<T> typeInfo, string jsonVersion = "1.0")
    {
        ArgumentNullException.ThrowIfNull(typeInfo);
        return AwsJson(target, JsonSerializer.SerializeToUtf8Bytes(value, typeInfo), jsonVersion);
    }

    /// <summary>An awsQuery (or ec2Query) request: <c>POST /</c> with the form <c>Action=...&amp;Version=...&amp;name=value...</c>.</summary>
    /// <param name="action">The operation, such as <c>GetCallerIdentity</c>.</param>
    /// <param name="version">The API version, such as <c>2011-06-15</c>.</param>
    /// <param name="parameters">The other parameters, encoded here; null for none.</param>
    public static AwsRequest AwsQuery(string action, string version, IEnumerable<KeyValuePair<string, string>>? parameters = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(action);
        ArgumentException.ThrowIfNullOrWhiteSpace(version);
        var form = new StringBuilder("Action=").Append(Uri.EscapeDataString(action)).Append("&Version=").Append(Uri.EscapeDataString(version));
        if (parameters is not null)
            foreach (var (name, value) in parameters)
                form.Append('&').Append(Uri.EscapeDataString(name)).Append('=').Append(Uri.EscapeDataString(value ?? ""));
        return new AwsRequest(HttpMethod.Post)
        {
            ContentType = "application/x-www-form-urlencoded; charset=utf-8",
            Body = Encoding.UTF8.GetBytes(form.ToString()),
            OperationName = action,
        };
    }

    /// <summary>Shows the method, path, operation and body size.</summary>
    public override string ToString() =>
        $"AwsRequest {{ {Method} {Path}{(Query.Length == 0 ? "" : "?" + Query)}, OperationName = {OperationName}, Body = {Body.Length} bytes }}";
}

/// <summary>A successful answer: status, headers and body. Can be built for unit tests.</summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
sealed class AwsResponse
{
    private readonly HttpHeaders? _headers;
    private readonly HttpHeaders? _contentHeaders;
    private readonly IReadOnlyList<KeyValuePair<string, string>>? _headerList;

    /// <summary>Creates a response (for tests and fakes).</summary>
    /// <param name="statusCode">The HTTP status.</param>
    /// <param name="body">The body.</param>
    /// <param name="headers">The headers; null for none.</param>
    public AwsResponse(HttpStatusCode statusCode, ReadOnlyMemory<byte> body, IReadOnlyList<KeyValuePair<string, string>>? headers = null)
    {
        StatusCode = statusCode;
        Body = body;
        _headerList = headers ?? Array.Empty<KeyValuePair<string, string>>();
    }

    // The headers of the HttpResponseMessage stay readable after it is disposed: no copy.
    internal AwsResponse(HttpStatusCode statusCode, ReadOnlyMemory<byte> body, HttpHeaders headers, HttpHeaders? contentHeaders)
    {
        StatusCode = statusCode;
        Body = body;
        _headers = headers;
        _contentHeaders = contentHeaders;
    }

    // A streaming answer's response, its body unread (SendStreamingAsync).
    internal HttpResponseMessage? Open { get; init; }

    /// <summary>The HTTP status.</summary>
    public HttpStatusCode StatusCode { get; }

    /// <summary>The body, as sent.</summary>
    public ReadOnlyMemory<byte> Body { get; }

    /// <summary>The request id (<c>x-amzn-RequestId</c>, or S3's <c>x-amz-request-id</c>), for AWS support.</summary>
    public string? RequestId => GetHeader("x-amzn-RequestId") ?? GetHeader("x-amz-request-id");

    /// <summary>A header's value (several joined with <c>, </c>), content headers included; null when absent.</summary>
    public string? GetHeader(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (_headerList is not null)
        {
            foreach (var (key, value) in _headerList)
                if (key.Equals(name, StringComparison.OrdinalIgnoreCase)) return value;
            return null;
        }
        if (_headers!.NonValidated.TryGetValues(name, out var values)) return values.ToString();
        return _contentHeaders is not null && _contentHeaders.NonValidated.TryGetValues(name, out values) ? values.ToString() : null;
    }

    // Several headers in one pass over the answer's (for a reader that wants them all, as Lambda's does): values[i] is
    // names[i]'s as GetHeader reads it, null when absent.
    internal void GetHeaders(ReadOnlySpan<string> names, Span<string?> values)
    {
        values.Clear();
        if (_headers is null)
        {
            for (int i = 0; i < names.Length; i++) values[i] = GetHeader(names[i]);
            return;
        }
        foreach (var (name, value) in _headers.NonValidated)
            for (int i = 0; i < names.Length; i++)
                if (values[i] is null && name.Equals(names[i], StringComparison.OrdinalIgnoreCase)) values[i] = value.ToString();
        if (_contentHeaders is null) return;
        for (int i = 0; i < names.Length; i++)
            if (values[i] is null && _contentHeaders.NonValidated.TryGetValues(names[i], out var found)) values[i] = found.ToString();
    }

    /// <summary>The body as UTF-8 text.</summary>
    public string GetBodyString() => Encoding.UTF8.GetString(Body.Span);

    /// <summary>Deserializes the JSON body with source-generated metadata (AOT and trimming safe).</summary>
    /// <param name="typeInfo">The output's metadata, such as <c>MyJsonContext.Default.GetItemOutput</c>.</param>
    /// <exception cref="JsonException">The body is not JSON of that shape.</exception>
    public T? DeserializeBody<T>(JsonTypeInfo<T> typeInfo)
    {
        ArgumentNullException.ThrowIfNull(typeInfo);
        return JsonSerializer.Deserialize(Body.Span, typeInfo);
    }

    /// <summary>Shows the status, request id and body size.</summary>
    public override string ToString() => $"AwsResponse {{ StatusCode = {(int)StatusCode}, RequestId = {RequestId}, Body = {Body.Length} bytes }}";
}

/// <summary>Who AWS says is at fault for an error (the SDKs' <c>ErrorType</c>).</summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
enum AwsErrorType
{
    /// <summary>Not said.</summary>
    Unknown,
    /// <summary>The request was wrong (a client error, HTTP 4xx).</summary>
    Sender,
    /// <summary>The service failed (HTTP 5xx).</summary>
    Receiver,
}

/// <summary>
/// The service answered with an error, after any retries: <see cref="ErrorCode"/> names it as AWS does
/// (<c>ResourceNotFoundException</c>, <c>NoSuchKey</c>, <c>AWS.SimpleQueueService.NonExistentQueue</c>, ...), whatever the
/// protocol wrote it in (awsJson, restJson, awsQuery and ec2Query XML, S3's XML, a bodiless HEAD answer, SQS's
/// <c>x-amzn-query-error</c>). An answer without a body is named from its status (<c>ServiceUnavailable</c>).
/// </summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
class AwsServiceException : AwsException
{
    /// <summary>Creates the exception (for tests and fakes; the pipeline fills every property).</summary>
    public AwsServiceException(string serviceName, string errorCode, string errorMessage, HttpStatusCode statusCode, Exception? innerException = null)
        : base(errorMessage, innerException)
    {
        ServiceName = serviceName ?? throw new ArgumentNullException(nameof(serviceName));
        ErrorCode = errorCode ?? throw new ArgumentNullException(nameof(errorCode));
        ErrorMessage = errorMessage ?? throw new ArgumentNullException(nameof(errorMessage));
        StatusCode = statusCode;
    }

    /// <summary>The service id, such as <c>DynamoDB</c>.</summary>
    public string ServiceName { get; }

    /// <summary>The operation, when the request named it.</summary>
    public string? OperationName { get; init; }

    /// <summary>The error code, such as <c>ResourceNotFoundException</c> (without AWS's <c>prefix#</c> or <c>:suffix</c>).</summary>
    public string ErrorCode { get; }

    /// <summary>The service's own message.</summary>
    public string ErrorMessage { get; }

    /// <summary>The HTTP status.</summary>
    public HttpStatusCode StatusCode { get; }

    /// <summary>Who is at fault, when the answer says (<c>Type</c> in XML errors, the fault in <c>x-amzn-query-error</c>),
    /// else from the status.</summary>
    public AwsErrorType ErrorType { get; init; }

    /// <summary>The request id, for AWS support.</summary>
    public string? RequestId { get; init; }

    /// <summary>S3's extended request id (<c>x-amz-id-2</c>, <c>HostId</c>), for AWS support.</summary>
    public string? ExtendedRequestId { get; init; }

    /// <summary>The service's reason, when it gives one (Lambda's throttling <c>Reason</c>, such as
    /// <c>ConcurrentInvocationLimitExceeded</c>).</summary>
    public string? Reason { get; init; }

    /// <summary>The <c>Retry-After</c> the service asked for, if any.</summary>
    public TimeSpan? RetryAfter { get; init; }

    /// <summary>How many attempts were made, this one included.</summary>
    public int Attempts { get; init; } = 1;

    /// <summary>Whether this is throttling (HTTP 429 or a throttling error code): the service did no work; a later retry is safe.</summary>
    public bool IsThrottling => StatusCode == HttpStatusCode.TooManyRequests || AwsErrors.IsThrottlingCode(ErrorCode);

    // The server's Date, for clock-skew correction.
    internal DateTimeOffset? ServerDate { get; init; }

    // The error answer's body, for callers that read fields of their own from it.
    internal ReadOnlyMemory<byte> Body { get; init; }

    /// <summary>What failed, with the code, the service's message, the reason, the request id and the attempts.</summary>
    public override string Message =>
        $"{ServiceName}{(OperationName is null ? "" : " " + OperationName)} answered {(int)StatusCode} {ErrorCode}: {ErrorMessage}" +
        (Reason is null ? "" : $" (reason: {Reason})") +
        (RequestId is null ? "" : $" (request id {RequestId})") +
        (Attempts > 1 ? $" after {Attempts} attempts" : "");
}

/// <summary>An attempt took longer than its timeout (<see cref="AwsRequest.Timeout"/>, <see cref="AwsClientOptions.Timeout"/>
/// or the HttpClient's own) and no retry was left. A cancellation by the caller is an <see cref="OperationCanceledException"/> instead.</summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
sealed class AwsTimeoutException : AwsException
{
    /// <summary>Creates the exception.</summary>
    public AwsTimeoutException(string serviceName, string? operationName, TimeSpan timeout, int attempts, Exception? innerException = null)
        : this(serviceName, operationName, timeout, attempts, innerException, null) { }

    internal AwsTimeoutException(string serviceName, string? operationName, TimeSpan timeout, int attempts, Exception? innerException, string? waitingFor)
        : base($"{serviceName}{(operationName is null ? "" : " " + operationName)} timed out: " +
               (waitingFor is null ? "an attempt" : waitingFor) + $" took longer than {timeout} " +
               $"(set the request's or the client's Timeout for longer calls){(attempts > 1 ? $"; {attempts} attempts made" : "")}.", innerException)
    {
        ServiceName = serviceName;
        OperationName = operationName;
        Timeout = timeout;
        Attempts = attempts;
    }

    /// <summary>The service id.</summary>
    public string ServiceName { get; }
    /// <summary>The operation, when the request named it.</summary>
    public string? OperationName { get; }
    /// <summary>The timeout of one attempt.</summary>
    public TimeSpan Timeout { get; }
    /// <summary>How many attempts were made.</summary>
    public int Attempts { get; }
}

/// <summary>The connection failed, or the answer was cut short, on every attempt. <see cref="Exception.InnerException"/>
/// is the last <see cref="HttpRequestException"/> or <see cref="IOException"/>.</summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
sealed class AwsConnectionException : AwsException
{
    /// <summary>Creates the exception.</summary>
    public AwsConnectionException(string serviceName, string? operationName, Uri endpoint, int attempts, Exception innerException)
        : base($"{serviceName}{(operationName is null ? "" : " " + operationName)} could not be reached at {UriText.Show(endpoint)}: " +
               $"{innerException?.Message}{(attempts > 1 ? $" ({attempts} attempts made)" : "")}", innerException)
    {
        ServiceName = serviceName;
        OperationName = operationName;
        Attempts = attempts;
    }

    /// <summary>The service id.</summary>
    public string ServiceName { get; }
    /// <summary>The operation, when the request named it.</summary>
    public string? OperationName { get; }
    /// <summary>How many attempts were made.</summary>
    public int Attempts { get; }
}

/// <summary>The answer was longer than <see cref="AwsClientOptions.MaxResponseSize"/> (declared or as it arrived); it
/// was not read further. Not retried.</summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
sealed class AwsResponseTooLargeException : AwsException
{
    /// <summary>Creates the exception.</summary>
    public AwsResponseTooLargeException(string serviceName, long limit, long? declaredLength)
        : base($"{serviceName} answered with more than {limit} bytes" +
               (declaredLength is { } declared ? $" (it declared {declared})" : "") +
               "; the answer was not read. Raise AwsClientOptions.MaxResponseSize if answers this large are expected.")
    {
        ServiceName = serviceName;
        Limit = limit;
    }

    /// <summary>The service id.</summary>
    public string ServiceName { get; }
    /// <summary>The limit, in bytes.</summary>
    public long Limit { get; }
}

/// <summary>Settings of a fan-out.</summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
sealed class AwsFanOutOptions
{
    internal static readonly AwsFanOutOptions Default = new();

    /// <summary>The most calls in flight at once, never exceeded; also the most requests read ahead of the results
    /// consumed. 16 by default.</summary>
    public int MaxConcurrency { get; init; } = 16;

    /// <summary>Whether the fan-out lowers its concurrency when the service says too many calls run at once (Lambda's
    /// 429 <c>ConcurrentInvocationLimitExceeded</c>) and raises it again, never above <see cref="MaxConcurrency"/>, as
    /// calls succeed. On by default; off keeps exactly <see cref="MaxConcurrency"/> in flight and leaves throttles to
    /// the retries.</summary>
    public bool AdaptiveConcurrency { get; init; } = true;

    /// <summary>Told after each call completes (from the thread that completed it), and once at the end.</summary>
    public IProgress<AwsFanOutProgress>? Progress { get; init; }
}

/// <summary>Where a fan-out stands.</summary>
/// <param name="Completed">Calls finished, failed ones included.</param>
/// <param name="Failed">Calls that failed.</param>
/// <param name="InFlight">Calls started and not yet finished.</param>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
readonly record struct AwsFanOutProgress(long Completed, long Failed, int InFlight);

/// <summary>The outcome of one request of a fan-out: its response, or the exception it failed with. Can be built for tests.</summary>
/// <typeparam name="TRequest">The request type.</typeparam>
/// <typeparam name="TResponse">The response type.</typeparam>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
readonly struct AwsOutcome<TRequest, TResponse>
{
    /// <summary>A success.</summary>
    public AwsOutcome(long index, TRequest request, TResponse response, TimeSpan elapsed)
    {
        Index = index;
        Request = request;
        Response = response;
        Elapsed = elapsed;
    }

    /// <summary>A failure.</summary>
    public AwsOutcome(long index, TRequest request, Exception error, TimeSpan elapsed)
    {
        Index = index;
        Request = request;
        Error = error ?? throw new ArgumentNullException(nameof(error));
        Elapsed = elapsed;
    }

    /// <summary>The request's position in the input, from 0.</summary>
    public long Index { get; }

    /// <summary>The request.</summary>
    public TRequest Request { get; }

    /// <summary>The response; default when the call failed.</summary>
    public TResponse? Response { get; }

    /// <summary>Why it failed (an <see cref="AwsException"/>); null when it succeeded.</summary>
    public Exception? Error { get; }

    /// <summary>How long the call took, retries included.</summary>
    public TimeSpan Elapsed { get; }

    /// <summary>Whether the call succeeded.</summary>
    [MemberNotNullWhen(true, nameof(Response))]
    [MemberNotNullWhen(false, nameof(Error))]
    public bool Succeeded => Error is null;

    /// <summary>Returns the response, or throws the exception the call failed with.</summary>
    public TResponse GetResponseOrThrow()
    {
        if (Error is not null) ExceptionDispatchInfo.Throw(Error);
        return Response!;
    }

    /// <summary>Shows the index, request and result.</summary>
    public override string ToString() =>
        $"AwsOutcome {{ Index = {Index}, Request = {Request}, {(Error is null ? "Succeeded" : "Failed: " + Error.GetType().Name)} }}";
}

/// <summary>
/// Calls one AWS service: any request, in any protocol (<see cref="SendAsync"/>), or many concurrently
/// (<see cref="SendAllAsync(IEnumerable{AwsRequest}, AwsFanOutOptions?, CancellationToken)"/>,
/// <see cref="SendAllSettledAsync(IEnumerable{AwsRequest}, AwsFanOutOptions?, CancellationToken)"/>,
/// <see cref="SendEachAsync(IEnumerable{AwsRequest}, AwsFanOutOptions?, CancellationToken)"/>). The endpoint, region and
/// credentials are resolved as the AWS SDKs do; every attempt is signed afresh; throttling and transient failures are
/// retried (standard or adaptive mode); error answers are <see cref="AwsServiceException"/>s. Every failure is an
/// <see cref="AwsException"/>; an <see cref="OperationCanceledException"/> means the caller's token was cancelled.
/// Thread-safe: make one per service and share it.
/// </summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
sealed class AwsClient : IDisposable
{
    internal const long DefaultMaxResponseSize = 64L * 1024 * 1024;

    private readonly HttpMessageInvoker _http; // not an HttpClient: each attempt has its own timeout and token
    private readonly IAwsCredentialsProvider? _credentials; // null: requests go unsigned
    private readonly SigV4Options _signing;
    private readonly TimeProvider _clock;
    private readonly TimeSpan _timeout;
    private readonly long _maxResponseSize;
    private readonly string _origin;     // scheme://host[:port]
    private readonly string _basePath;   // the endpoint's own path, without its last '/'
    private readonly string _host;       // the Host header HttpClient sends
    private readonly KeyValuePair<string, string>[] _hostOnly; // Host alone: the signed headers of a request that adds none (read, never written)
    private readonly RetryPolicy _retry;
    private readonly AttemptTimeouts _timeouts;

    /// <summary>Creates a client for a service. The region, endpoint and retry settings are resolved now (reading the
    /// environment and the shared config files for those not given); no credentials are read and nothing is sent
    /// until the first call.</summary>
    /// <param name="service">The service, such as <see cref="AwsService.DynamoDB"/>.</param>
    /// <param name="options">The settings; null for the defaults.</param>
    /// <exception cref="ArgumentException">A setting given in code is malformed (the region, the endpoint), or the handler
    /// follows redirects and has already sent.</exception>
    /// <exception cref="ArgumentOutOfRangeException">MaxAttempts, RetryBaseDelay, Timeout or MaxResponseSize is out of range.</exception>
    /// <exception cref="AwsConfigurationException">No region is set anywhere, or the configuration holds a malformed
    /// setting (the message says where).</exception>
    public AwsClient(AwsService service, AwsClientOptions? options = null)
        : this(service ?? throw new ArgumentNullException(nameof(service)), options ?? new AwsClientOptions(), signed: true)
    {
    }

    internal AwsClient(AwsService service, AwsClientOptions options, bool signed, long? defaultMaxResponseSize = null)
    {
        Service = service;
        var settings = AwsClientSettings.Resolve(service, options);
        Region = settings.Region;
        Endpoint = settings.Endpoint;
        _clock = settings.Clock;
        _timeout = options.Timeout ?? service.DefaultTimeout;
        _maxResponseSize = options.MaxResponseSize ?? defaultMaxResponseSize ?? DefaultMaxResponseSize;
        _origin = Endpoint.GetLeftPart(UriPartial.Authority);
        _basePath = Endpoint.AbsolutePath.TrimEnd('/');
        _host = SigV4.HostHeader(Endpoint);
        _hostOnly = [new("Host", _host)];
        _signing = new SigV4Options(service.SigningName, Region);
        _credentials = signed ? options.Credentials ?? DefaultCredentials(settings.Context) : null;
        _retry = new RetryPolicy(settings.RetryMode, settings.MaxAttempts, options.RetryBaseDelay, _clock);
        _timeouts = new AttemptTimeouts(_clock);
        if (options.HttpHandler is { } handler)
        {
            TurnOffRedirects(handler);
            _http = new HttpMessageInvoker(handler, disposeHandler: false);
        }
        else _http = new HttpMessageInvoker(AwsHttp.ProxiedHandler, disposeHandler: false);
    }

    // The default credentials chain, for a client given none. An app that always gives them can turn the chain off with
    // a feature switch, and the trimmer then leaves it out (credential_process, IAM Identity Center, the container and
    // instance metadata sources: about 0.5 MB of a Native AOT app):
    //   <RuntimeHostConfigurationOption Include="SigV4Lite.DefaultCredentialsChain.IsSupported" Value="false" Trim="true" />
    internal const string DefaultChainSwitch = "SigV4Lite.DefaultCredentialsChain.IsSupported";

#if NET9_0_OR_GREATER
    [System.Diagnostics.CodeAnalysis.FeatureSwitchDefinition(DefaultChainSwitch)]
#endif
    private static bool IsDefaultChainSupported => !AppContext.TryGetSwitch(DefaultChainSwitch, out bool supported) || supported;

    private static IAwsCredentialsProvider DefaultCredentials(AwsConfigContext context) =>
        IsDefaultChainSupported
            ? AwsCredentialsChain.ForContext(context)
            : throw new AwsConfigurationException($"No credentials were given (AwsClientOptions.Credentials), and this app turned the default credentials chain off " +
                $"(the feature switch {DefaultChainSwitch} is false). Give the credentials, or remove the switch from the project.");

    private static void TurnOffRedirects(HttpMessageHandler handler)
    {
        try
        {
            SigV4Handler.TurnOffAutoRedirect(handler, nameof(AwsClient));
        }
        catch (InvalidOperationException e)
        {
            throw new ArgumentException(e.Message, "options", e);
        }
    }

    /// <summary>The service.</summary>
    public AwsService Service { get; }

    /// <summary>The region requests are signed for.</summary>
    public string Region { get; }

    /// <summary>The endpoint requests go to.</summary>
    public Uri Endpoint { get; }

    /// <summary>Standard or adaptive retries, as resolved.</summary>
    public AwsRetryMode RetryMode => _retry.Mode;

    /// <summary>Attempts per call, as resolved.</summary>
    public int MaxAttempts => _retry.MaxAttempts;

    internal TimeProvider Clock => _clock;
    internal RetryPolicy Retry => _retry;

    /// <summary>Ends the client: calls made after it fail with <see cref="ObjectDisposedException"/>; calls already made
    /// finish as they would have. A handler given in <see cref="AwsClientOptions.HttpHandler"/> stays open: it is the caller's.</summary>
    public void Dispose() => Volatile.Write(ref _disposed, true);

    // The HttpMessageInvoker is never disposed: it owns nothing (disposeHandler: false), and a call already under way
    // keeps sending through it, retries included.
    private bool _disposed;

    // The client's name in ObjectDisposedException: LambdaClient's when it is the one the caller holds.
    internal string OwnerName { get; init; } = nameof(AwsClient);

    // At each way in (a fan-out counts once, when it is called): a fan-out under way when Dispose comes goes on.
    internal void ThrowIfDisposed()
    {
        if (Volatile.Read(ref _disposed)) throw new ObjectDisposedException(OwnerName);
    }

    /// <summary>Sends a request: signed, retried as the retry mode says, its answer read whole.</summary>
    /// <param name="request">The request.</param>
    /// <param name="cancellationToken">Cancels the call (an <see cref="OperationCanceledException"/>, never retried).</param>
    /// <returns>The answer, when its status is 2xx (and, for S3's CopyObject, UploadPartCopy and CompleteMultipartUpload,
    /// its body is not an error).</returns>
    /// <exception cref="AwsServiceException">The service answered with an error, after any retries.</exception>
    /// <exception cref="AwsTimeoutException">The last attempt timed out.</exception>
    /// <exception cref="AwsConnectionException">The connection failed on every attempt.</exception>
    /// <exception cref="AwsResponseTooLargeException">The answer was longer than <see cref="AwsClientOptions.MaxResponseSize"/>.</exception>
    /// <exception cref="AwsCredentialsException">No credentials could be had.</exception>
    /// <exception cref="ArgumentException">The request is malformed (its path, query or headers); nothing was sent.</exception>
    public Task<AwsResponse> SendAsync(AwsRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        return SendCoreAsync(request, null, cancellationToken);
    }

    // ---------------------------------------------------------------------------------------------------------
    // One call: attempts until one succeeds, one fails for good, or the retries run out.
    // ---------------------------------------------------------------------------------------------------------

    /// <summary>
    /// Sends a request as <see cref="SendAsync"/> does (signed, retried, errors read into exceptions), but returns as
    /// soon as a successful answer's headers arrive: its body is the caller's to read as it comes (an event stream such
    /// as Bedrock's ConverseStream, a large S3 object). The timeout covers the wait for the headers; reading the body
    /// is bounded by the caller's token only. Dispose the response (before its end, that closes the connection).
    /// </summary>
    /// <param name="request">The request.</param>
    /// <param name="cancellationToken">Cancels the call until the headers arrive.</param>
    /// <returns>The answer, with a 2xx status and its body unread.</returns>
    /// <exception cref="AwsServiceException">The service answered with an error, after any retries.</exception>
    /// <exception cref="AwsTimeoutException">The last attempt timed out before the headers came.</exception>
    /// <exception cref="AwsConnectionException">The connection failed on every attempt.</exception>
    /// <exception cref="ArgumentException">The request is malformed; nothing was sent.</exception>
    public async Task<HttpResponseMessage> SendStreamingAsync(AwsRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var answer = await SendCoreAsync(request, null, cancellationToken, streaming: true).ConfigureAwait(false);
        return answer.Open!;
    }

    internal Task<AwsResponse> SendCoreAsync(AwsRequest request, FanOutContext? fanOut, CancellationToken cancellationToken, bool streaming = false) =>
        SendCoreAsync(request, fanOut, (object?)null, static (_, answer) => answer, cancellationToken, streaming);

    // `read` makes the caller's response from the successful answer in this same state machine, so that a service
    // client's call (LambdaClient's) is one async method and one task, not two. What it throws is the caller's. Each
    // attempt is sent from here too: its before (StartAttemptAsync) usually completes at once, reading the answer
    // (ReadAttemptAsync) usually does, and its after (EndAttempt) is synchronous, so an answer comes back through this
    // one async method.
    internal async Task<TResponse> SendCoreAsync<TState, TResponse>(AwsRequest request, FanOutContext? fanOut, TState state,
        Func<TState, AwsResponse, TResponse> read, CancellationToken cancellationToken, bool streaming = false)
    {
        if (fanOut is null) ThrowIfDisposed(); // a fan-out's calls were made when the fan-out was
        var call = Prepare(request, streaming);
        var telemetry = CallTelemetry.Start(Service, request.OperationName, Region, request.InvokedFunction);
        try
        {
            while (true)
            {
                var credentials = await StartAttemptAsync(call, fanOut, telemetry, cancellationToken).ConfigureAwait(false);
                // `signedOffset`: the clock offset the attempt is signed with; a skew error is judged against it, not
                // against one learnt since.
                var signedOffset = call.ClockOffset ?? _retry.ClockOffset;
                AttemptDeadline? deadline = null;
                HttpRequestMessage? sent = null;
                Attempt attempt;
                try
                {
                    // The attempt's timeout has a token of its own, so that its expiry is told apart from the caller's cancellation.
                    deadline = _timeouts.Start(call.Timeout, cancellationToken);
                    var token = deadline?.Token ?? cancellationToken;
                    sent = BuildRequest(call, credentials, _clock.GetUtcNow() + signedOffset);
                    var answer = await _http.SendAsync(sent, token).ConfigureAwait(false) // returns at the headers, as ResponseHeadersRead
                        ?? throw new InvalidOperationException("The HTTP handler (AwsClientOptions.HttpHandler) returned no response message.");
                    attempt = await ReadAttemptAsync(call, credentials, answer, signedOffset, token).ConfigureAwait(false);
                }
                catch (Exception e) when (e is not AwsException && cancellationToken.IsCancellationRequested)
                {
                    GiveBackSlot(call, fanOut);
                    throw new OperationCanceledException("The call was cancelled.", e, cancellationToken); // the caller's, whatever the stack made of it
                }
                catch (Exception e) when (AttemptFailure(e, call, deadline) is { } failure)
                {
                    attempt = new Attempt(null, failure, signedOffset);
                }
                catch
                {
                    GiveBackSlot(call, fanOut); // a redirect, a handler's own exception: thrown
                    throw;
                }
                finally
                {
                    sent?.Dispose();
                    deadline?.End();
                }
                if (EndAttempt(call, fanOut, telemetry, attempt, out var retryDelay) is { } response)
                {
                    var result = read(state, response); // what it throws (a function error) is the call's failure
                    telemetry.Succeeded(Service, request.OperationName, response);
                    return result;
                }
                if (retryDelay > TimeSpan.Zero) await Task.Delay(retryDelay, _clock, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception e)
        {
            telemetry.Failed(Service, request.OperationName, e);
            throw;
        }
    }

    // An attempt that throws (or never starts) gives the fan-out's limiter its place back.
    private static void GiveBackSlot(Call call, FanOutContext? fanOut) =>
        fanOut?.Limiter?.Release(call.InFlight, concurrencyThrottled: false, succeeded: false);

    // The waits first (the fan-out's limit, adaptive retries' rate), then the credentials to sign with: a call that
    // waited long in a queue signs with fresh ones. Each usually completes at once. Where the attempt started is noted
    // in the call, for EndAttempt.
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))] // when it does wait, no new state machine per attempt
    private async ValueTask<AwsCredentials?> StartAttemptAsync(Call call, FanOutContext? fanOut, CallTelemetry telemetry, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        call.FanOutSuccesses = fanOut?.Successes ?? 0;
        var limiter = fanOut?.Limiter;
        call.InFlight = limiter is null ? 0 : await limiter.AcquireAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await _retry.BeforeAttemptAsync(cancellationToken).ConfigureAwait(false);
            long identityStarted = telemetry.Measuring ? Stopwatch.GetTimestamp() : 0;
            var credentials = await GetCredentialsAsync(call, call.Attempts + 1, cancellationToken).ConfigureAwait(false);
            telemetry.Identity(Service, call.Request.OperationName, identityStarted);
            call.Attempts++;
            call.AttemptStarted = telemetry.Measuring ? Stopwatch.GetTimestamp() : 0;
            return credentials;
        }
        catch
        {
            GiveBackSlot(call, fanOut); // a cancellation, no credentials: the slot is not lost
            throw;
        }
    }

    // The attempt's outcome told to the limiter and the retry policy: the answer; or null and how long to wait before
    // going again; or a final failure, thrown.
    private AwsResponse? EndAttempt(Call call, FanOutContext? fanOut, CallTelemetry telemetry, in Attempt attempt, out TimeSpan retryDelay)
    {
        retryDelay = TimeSpan.Zero;
        bool throttled = attempt.Failure is AwsServiceException { IsThrottling: true };
        fanOut?.Limiter?.Release(call.InFlight, throttled && AwsErrors.IsConcurrencyThrottle((AwsServiceException)attempt.Failure!), attempt.Response is not null);
        _retry.AfterAttempt(throttled);
        if (attempt.Response is { } response)
        {
            // A corrected clock is the client's only once the service accepted a request signed with it.
            if (call.ClockOffset is { } corrected) _retry.ConfirmClockOffset(corrected);
            _retry.OnSuccess(call.TokensTaken);
            fanOut?.OnSuccess();
            telemetry.Attempt(Service, call.Request.OperationName, call.AttemptStarted, throttled: false, retry: false);
            return response;
        }
        var delay = DecideRetry(attempt, call, fanOut is not null && fanOut.Successes > call.FanOutSuccesses, fanOut?.Limiter is not null);
        telemetry.Attempt(Service, call.Request.OperationName, call.AttemptStarted, throttled, retry: delay is not null);
        if (delay is not { } wait) ExceptionDispatchInfo.Throw(attempt.Failure!);
        else retryDelay = wait;
        return null;
    }

    // The credentials, within the attempt's timeout: a credential source that hangs fails the call as a timeout would.
    private async ValueTask<AwsCredentials?> GetCredentialsAsync(Call call, int attemptNumber, CancellationToken cancellationToken)
    {
        if (_credentials is null) return null;
        var pending = _credentials.GetCredentialsAsync(cancellationToken);
        if (pending.IsCompleted) return await pending.ConfigureAwait(false);
        // A provider may ignore the token: the wait watches it (and the timeout) itself.
        if (call.Timeout == System.Threading.Timeout.InfiniteTimeSpan || call.Timeout > AttemptTimeouts.MaxTimerDelay)
            return await pending.AsTask().WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return await pending.AsTask().WaitAsync(call.Timeout, _clock, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException e)
        {
            throw new AwsTimeoutException(Service.ServiceId, call.Request.OperationName, call.Timeout, attemptNumber, e, "getting credentials");
        }
    }

    // Null: no retry (the failure is final). Else how long to wait before the next attempt.
    private TimeSpan? DecideRetry(in Attempt attempt, Call call, bool fanOutProgressed, bool adaptiveFanOut)
    {
        var failure = attempt.Failure!;
        call.CountedAttempts++;
        if (failure is AwsServiceException error)
        {
            if (call.ClockOffset is null && _retry.TryCorrectClockSkew(error, attempt.SignedOffset, out var corrected))
            {
                // Judged by a clock that differs from the one it was signed with: sign again with the corrected time, once per call.
                call.ClockOffset = corrected;
                call.CountedAttempts--;
                return TimeSpan.Zero;
            }
            // A throttled call did no work: while the fan-out it belongs to makes progress, it is sent again without
            // spending an attempt or the quota, so that a 0.1% chance of being throttled three times fails nothing.
            // "Too many at once" under adaptive concurrency is progress by definition (others are running, and the
            // limiter has just made room for this one to wait its turn), even before the first success comes back.
            bool tooManyAtOnce = adaptiveFanOut && AwsErrors.IsConcurrencyThrottle(error);
            if (error.IsThrottling && (fanOutProgressed || tooManyAtOnce) && _retry.MaxAttempts > 1 && call.Attempts < RetryPolicy.MaxThrottledAttemptsInFanOut)
            {
                call.CountedAttempts--;
                return _retry.Backoff(call.Attempts);
            }
        }
        if (!RetryPolicy.IsRetryable(failure) || call.CountedAttempts >= _retry.MaxAttempts) return null;
        int cost = failure is AwsTimeoutException ? RetryPolicy.TimeoutRetryCost : RetryPolicy.RetryCost;
        if (!_retry.TryTakeRetryTokens(cost)) return null;
        call.TokensTaken += cost;
        return _retry.Backoff(call.CountedAttempts);
    }

    // One call: what stays the same across its attempts (the URI, the signed headers, the payload hash), made once, and
    // what its attempts have spent on retries.
    private sealed class Call
    {
        public int Attempts;         // made, every one counted
        public int CountedAttempts;  // those that count toward MaxAttempts
        public int TokensTaken;      // from the retry quota
        public TimeSpan? ClockOffset; // the server's clock as its skew error said, for this call's next attempts
        // The attempt under way: where it stands in the fan-out's concurrency limit, the fan-out's successes when it
        // started (did the fan-out progress meanwhile?), its start for telemetry.
        public int InFlight;
        public long FanOutSuccesses;
        public long AttemptStarted;

        public required AwsRequest Request { get; init; }
        public required RequestTarget Target { get; init; }
        public Uri Uri => Target.Uri;
        public string Path => Target.Path;
        public required KeyValuePair<string, string>[] SignedHeaders { get; init; } // Host first
        public required TimeSpan Timeout { get; init; }
        // Made when first needed: a request signed through a prepared shape hashes its body as it signs.
        public string PayloadHash => _payloadHash ??= SigV4.HashPayload(Request.Body.Span);
        private string? _payloadHash;
        public bool Streaming { get; init; } // a successful answer's body is left unread, for the caller
    }

    private Call Prepare(AwsRequest request, bool streaming)
    {
        if (request.Timeout is { } timeout) AttemptTimeouts.Validate(timeout, nameof(request));
        return new Call
        {
            Request = request,
            Target = TargetFor(request.Path, request.Query),
            SignedHeaders = RequestRules.HeadersToSign(_hostOnly, request),
            Timeout = request.Timeout ?? _timeout,
            Streaming = streaming,
        };
    }

    // What this client keeps for each request path and query it sends (at most MaxTargets, first come; the rest are
    // made per call): a fan-out calls a few functions many times. A Uri is immutable, so calls in flight share it.
    private sealed class RequestTarget(Uri uri, string path, bool kept)
    {
        public Uri Uri { get; } = uri;
        public string Path { get; } = path;  // as signed: the endpoint's own path first
        public bool Kept { get; } = kept;    // in the client's cache (a target made for one call prepares no template here)
        public SigV4Template? Template;      // the shape prepared for signing; replaced whole, read without a lock
    }

    private RequestTarget TargetFor(string requestPath, string query)
    {
        if (_targets.TryGetValue((requestPath, query), out var target)) return target; // checked when it was made
        RequestRules.CheckPath(requestPath);
        RequestRules.CheckQuery(query);
        string path = _basePath.Length == 0 ? requestPath : _basePath + requestPath;
        string uri = query.Length == 0 ? _origin + path : string.Concat(_origin, path, "?", query);
        // Canonicalization off: the URI goes on the wire exactly as given, which is also what is signed.
        var made = new Uri(uri, new UriCreationOptions { DangerousDisablePathAndQueryCanonicalization = true });
        return _targets.TryAdd((requestPath, query), new RequestTarget(made, path, kept: true), out target) ? target
            : new RequestTarget(made, path, kept: false);
    }

    private const int MaxTargets = 256;
    private readonly FirstComeCache<(string Path, string Query), RequestTarget> _targets = new(MaxTargets);

    // ---------------------------------------------------------------------------------------------------------
    // An attempt's answer read and classified (ReadAttemptAsync), and what a thrown failure is for the retries
    // (AttemptFailure); SendCoreAsync signs, sends and decides.
    // ---------------------------------------------------------------------------------------------------------

    private readonly record struct Attempt(AwsResponse? Response, Exception? Failure, TimeSpan SignedOffset);

    // The answer to an attempt, read and classified: the response, or the service's error as the attempt's failure.
    // The answer is disposed here, unless it is a streaming call's (its body then is the caller's).
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))] // when a body's read does wait, no new state machine per attempt
    private async ValueTask<Attempt> ReadAttemptAsync(Call call, AwsCredentials? credentials, HttpResponseMessage response, TimeSpan signedOffset,
        CancellationToken token)
    {
        HttpResponseMessage? owned = response;
        try
        {
            if (!ReferenceEquals(response.RequestMessage?.RequestUri, call.Uri)) ThrowIfRedirected(response);
            if (call.Streaming && (int)response.StatusCode is >= 200 and <= 299)
            {
                var open = new AwsResponse(response.StatusCode, default, response.Headers, response.Content.Headers) { Open = response };
                response.RequestMessage = null; // the signed request (token, signature) does not go with the answer
                owned = null; // the caller's now
                return new Attempt(open, null, signedOffset);
            }
            // A HEAD answer, a 204 and a 304 have no body, whatever Content-Length says (it describes the object).
            var body = call.Request.Method == HttpMethod.Head || response.StatusCode is HttpStatusCode.NoContent or HttpStatusCode.NotModified
                ? Array.Empty<byte>()
                : await ResponseBody.ReadAsync(response.Content, _maxResponseSize, Service.ServiceId, token).ConfigureAwait(false);
            var answer = new AwsResponse(response.StatusCode, body, response.Headers, response.Content.Headers);
            var error = AwsErrors.ReadIfError(Service, call.Request.OperationName, answer, response, credentials, _clock, _retry.ClockOffset, call.Attempts);
            return error is null ? new Attempt(answer, null, signedOffset) : new Attempt(null, error, signedOffset);
        }
        finally
        {
            owned?.Dispose();
        }
    }

    // What a failed send or read is for the retries (the caller's cancellation set apart): a timeout, a connection
    // that failed, an answer too large. Null for what is not an attempt's failure (a redirect, a handler's own
    // exception): thrown.
    private AwsException? AttemptFailure(Exception e, Call call, AttemptDeadline? deadline)
    {
        if (e is AwsResponseTooLargeException tooLarge) return tooLarge;
        if (e is AwsException) return null;
        string? operation = call.Request.OperationName;
        if (deadline?.IsCancellationRequested == true) return new AwsTimeoutException(Service.ServiceId, operation, call.Timeout, call.Attempts, e);
        // Neither the caller nor our timer: the handler's own (its ConnectTimeout): the connection could not be made.
        if (e is OperationCanceledException or HttpRequestException or IOException) return new AwsConnectionException(Service.ServiceId, operation, Endpoint, call.Attempts, e);
        return null;
    }

    // The handler followed a redirect although it was told not to (a custom handler): fail, and say so.
    private void ThrowIfRedirected(HttpResponseMessage response)
    {
        var final = response.RequestMessage?.RequestUri;
        if (final is null || Uri.Compare(final, Endpoint, UriComponents.SchemeAndServer, UriFormat.Unescaped, StringComparison.OrdinalIgnoreCase) == 0) return;
        response.Dispose();
        throw new AwsException($"{Service.ServiceId}: the HTTP handler followed a redirect to {UriText.Show(final)}, another host than the endpoint " +
            $"{UriText.Show(Endpoint)}, carrying the signed request there. Give AwsClientOptions.HttpHandler a handler that does not follow redirects (AllowAutoRedirect = false).");
    }

    private HttpRequestMessage BuildRequest(Call call, AwsCredentials? credentials, DateTimeOffset time)
    {
        var source = call.Request;
        var request = new HttpRequestMessage(source.Method, call.Uri);
        if (source.Body.Length > 0 || source.ContentType is not null || source.Method == HttpMethod.Post || source.Method == HttpMethod.Put)
            request.Content = new ReadOnlyMemoryContent(source.Body);
        var headers = call.SignedHeaders;
        for (int i = 1; i < headers.Length; i++) // [0] is Host, which HttpClient writes from the URI
            if (!request.Headers.TryAddWithoutValidation(headers[i].Key, headers[i].Value))
                request.Content?.Headers.TryAddWithoutValidation(headers[i].Key, headers[i].Value);
        if (credentials is null) return request;

        string authorization, amzDate;
        if (TemplateFor(call, credentials, time) is { } template)
            authorization = SigV4.SignWithTemplate(template, source.Body.Span, time, credentials, out amzDate);
        else
        {
            var signature = SigV4.Sign(source.Method.Method, call.Path, source.Query, headers, call.PayloadHash, time, credentials, _signing);
            (authorization, amzDate) = (signature.Authorization!, signature.AmzDate);
        }
        // What SigV4Signature.HeadersToAdd lists (SigV4 only here), without making its list.
        request.Headers.TryAddWithoutValidation("X-Amz-Date", amzDate);
        if (credentials.SessionToken is { } sessionToken) request.Headers.TryAddWithoutValidation("X-Amz-Security-Token", sessionToken);
        if (_signing.AddContentSha256Header) request.Headers.TryAddWithoutValidation("x-amz-content-sha256", call.PayloadHash);
        request.Headers.TryAddWithoutValidation("Authorization", authorization);
        return request;
    }

    // The request shape a target is signed with, prepared once (SigV4Template). A shape changed only by the session
    // token (credentials refreshed) is prepared again; one sent with other headers (another operation on the same path
    // and query) is signed in full, so that two shapes of one target do not take turns being prepared.
    private SigV4Template? TemplateFor(Call call, AwsCredentials credentials, DateTimeOffset time)
    {
        if (_signing.AddContentSha256Header || !call.Target.Kept) return null; // S3 (the payload twice), or a one-off target
        var source = call.Request;
        string method = source.Method.Method;
        if (call.Target.Template is { } template)
        {
            if (template.Matches(method, call.Path, source.Query, call.SignedHeaders, credentials.SessionToken, _signing)) return template;
            if (!template.Matches(method, call.Path, source.Query, call.SignedHeaders, template.SessionToken, _signing)) return null;
        }
        return call.Target.Template = SigV4.CreateTemplate(method, call.Path, source.Query, call.SignedHeaders, time, credentials, _signing);
    }

    // ---------------------------------------------------------------------------------------------------------
    // Fan-out.
    // ---------------------------------------------------------------------------------------------------------

    /// <summary>
    /// Sends every request, at most <see cref="AwsFanOutOptions.MaxConcurrency"/> at a time, and returns the responses
    /// in input order. Fails fast: the first failure cancels the calls in flight, starts no new one, and is thrown
    /// (like <c>asyncio.gather</c>). A throttled call is sent again while the fan-out makes progress.
    /// </summary>
    /// <param name="requests">The requests, read lazily: at most MaxConcurrency ahead of the results.</param>
    /// <param name="options">Concurrency and progress; null for the defaults.</param>
    /// <param name="cancellationToken">Cancels every call in flight and stops the run.</param>
    /// <returns>The responses; element i answers request i.</returns>
    /// <exception cref="AwsException">The first failure.</exception>
    public Task<IReadOnlyList<AwsResponse>> SendAllAsync(IEnumerable<AwsRequest> requests, AwsFanOutOptions? options = null, CancellationToken cancellationToken = default) =>
        FanOut.CollectResponsesAsync(Checked(FanOutInput<AwsRequest>.From(requests)), SendInFanOut, options, cancellationToken);

    /// <inheritdoc cref="SendAllAsync(IEnumerable{AwsRequest}, AwsFanOutOptions?, CancellationToken)"/>
    public Task<IReadOnlyList<AwsResponse>> SendAllAsync(IAsyncEnumerable<AwsRequest> requests, AwsFanOutOptions? options = null, CancellationToken cancellationToken = default) =>
        FanOut.CollectResponsesAsync(Checked(FanOutInput<AwsRequest>.From(requests)), SendInFanOut, options, cancellationToken);

    /// <summary>
    /// Sends every request, at most <see cref="AwsFanOutOptions.MaxConcurrency"/> at a time, and returns every outcome
    /// in input order, each a success or a failure: one failure neither stops the others nor throws.
    /// </summary>
    /// <param name="requests">The requests, read lazily.</param>
    /// <param name="options">Concurrency and progress; null for the defaults.</param>
    /// <param name="cancellationToken">Cancels every call in flight and stops the run (an <see cref="OperationCanceledException"/>).</param>
    /// <returns>The outcomes; element i is request i's.</returns>
    public Task<IReadOnlyList<AwsOutcome<AwsRequest, AwsResponse>>> SendAllSettledAsync(IEnumerable<AwsRequest> requests, AwsFanOutOptions? options = null, CancellationToken cancellationToken = default) =>
        FanOut.CollectOutcomesAsync(Checked(FanOutInput<AwsRequest>.From(requests)), SendInFanOut, options, cancellationToken);

    /// <inheritdoc cref="SendAllSettledAsync(IEnumerable{AwsRequest}, AwsFanOutOptions?, CancellationToken)"/>
    public Task<IReadOnlyList<AwsOutcome<AwsRequest, AwsResponse>>> SendAllSettledAsync(IAsyncEnumerable<AwsRequest> requests, AwsFanOutOptions? options = null, CancellationToken cancellationToken = default) =>
        FanOut.CollectOutcomesAsync(Checked(FanOutInput<AwsRequest>.From(requests)), SendInFanOut, options, cancellationToken);

    /// <summary>
    /// Sends every request, at most <see cref="AwsFanOutOptions.MaxConcurrency"/> at a time, and yields each outcome as
    /// it completes, with its input index. Memory stays bounded however many requests there are: a consumer that falls
    /// behind holds back new calls. Leaving the loop early cancels the calls in flight. Each enumeration is a new run.
    /// </summary>
    /// <param name="requests">The requests, read lazily.</param>
    /// <param name="options">Concurrency and progress; null for the defaults.</param>
    /// <param name="cancellationToken">Cancels every call in flight and stops the run.</param>
    public IAsyncEnumerable<AwsOutcome<AwsRequest, AwsResponse>> SendEachAsync(IEnumerable<AwsRequest> requests, AwsFanOutOptions? options = null, CancellationToken cancellationToken = default) =>
        FanOut.Run(Checked(FanOutInput<AwsRequest>.From(requests)), SendInFanOut, options, failFast: false, cancellationToken);

    /// <inheritdoc cref="SendEachAsync(IEnumerable{AwsRequest}, AwsFanOutOptions?, CancellationToken)"/>
    public IAsyncEnumerable<AwsOutcome<AwsRequest, AwsResponse>> SendEachAsync(IAsyncEnumerable<AwsRequest> requests, AwsFanOutOptions? options = null, CancellationToken cancellationToken = default) =>
        FanOut.Run(Checked(FanOutInput<AwsRequest>.From(requests)), SendInFanOut, options, failFast: false, cancellationToken);

    // The input of a fan-out, once the client is known to be usable.
    internal Func<FanOutInput<T>> Checked<T>(Func<FanOutInput<T>> input)
    {
        ThrowIfDisposed();
        return input;
    }

    private Task<AwsResponse> SendInFanOut(AwsRequest request, FanOutContext context, CancellationToken cancellationToken) =>
        SendCoreAsync(request ?? throw new ArgumentException("A request of the fan-out is null.", "requests"), context, cancellationToken);
}

// ---------------------------------------------------------------------------------------------------------------
// Requests and answers on the wire.
// ---------------------------------------------------------------------------------------------------------------

internal static class RequestRules
{
    // The path and query go on the wire as given (no canonicalization), so they must already be a URI's.
    public static void CheckPath(string path)
    {
        if (path.Length == 0 || path[0] != '/')
            throw new ArgumentException($"The path '{Shorten(path)}' must start with '/', such as /2015-03-31/functions/f/invocations.", nameof(path));
        int bad = IndexOfNonUriChar(path, allowQuestionMark: false);
        if (bad >= 0)
            throw new ArgumentException($"The path has '{Describe(path[bad])}' at position {bad}; give it percent-encoded (space as %20, '?' as %3F, non-ASCII as UTF-8 %XX).", nameof(path));
    }

    public static void CheckQuery(string query)
    {
        int bad = IndexOfNonUriChar(query, allowQuestionMark: true);
        if (bad >= 0)
            throw new ArgumentException($"The query has '{Describe(query[bad])}' at position {bad}; give it percent-encoded (space as %20, non-ASCII as UTF-8 %XX), without the leading '?'.", nameof(query));
    }

    private static int IndexOfNonUriChar(string value, bool allowQuestionMark)
    {
        for (int i = 0; i < value.Length; i++)
        {
            char c = value[i];
            if (c <= ' ' || c >= '\u007f' || c is '#' or '"' or '<' or '>' or '\\' or '^' or '`' or '{' or '|' or '}' || (c == '?' && !allowQuestionMark))
                return i;
        }
        return -1;
    }

    private static string Describe(char c) => c < ' ' || c == '\u007f' ? $"U+{(int)c:X4}" : c.ToString();

    private static string Shorten(string value) => value.Length <= 100 ? value : value[..100] + "...";

    // Host first (SigV4.Sign signs it; HttpClient writes it from the URI), then the request's headers and content type;
    // a request that adds none shares the client's `hostOnly` list (never written).
    public static KeyValuePair<string, string>[] HeadersToSign(KeyValuePair<string, string>[] hostOnly, AwsRequest request)
    {
        var given = request.Headers ?? throw new ArgumentException("The request's Headers are null; leave them unset for none.", nameof(request));
        if (given.Count == 0 && request.ContentType is null) return hostOnly;
        var headers = new KeyValuePair<string, string>[1 + given.Count + (request.ContentType is null ? 0 : 1)];
        headers[0] = hostOnly[0];
        int n = 1;
        foreach (var header in given)
        {
            if (string.IsNullOrEmpty(header.Key) || header.Value is null)
                throw new ArgumentException("A request header has an empty name or a null value.", nameof(request));
            if (header.Key.Equals("Host", StringComparison.OrdinalIgnoreCase) || header.Key.Equals("Authorization", StringComparison.OrdinalIgnoreCase))
                throw new ArgumentException($"The request sets {header.Key}, which the pipeline sets itself (from the endpoint, and by signing); remove it.", nameof(request));
            headers[n++] = header;
        }
        if (request.ContentType is { } contentType) headers[n] = new("Content-Type", contentType);
        return headers;
    }
}

internal static class ResponseBody
{
    // The body, never longer than the limit: a declared length over it fails before a byte is read, and a body without
    // a length grows only as bytes arrive. A known length is read into an array of exactly its size: the one copy.
    public static async ValueTask<byte[]> ReadAsync(HttpContent content, long limit, string serviceName, CancellationToken cancellationToken)
    {
        long? length = content.Headers.ContentLength;
        if (length == 0) return Array.Empty<byte>();
        if (length > limit) throw new AwsResponseTooLargeException(serviceName, limit, length);
        using var stream = await content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        if (length is { } known && known <= Array.MaxLength)
        {
            var body = new byte[known];
            await stream.ReadExactlyAsync(body, cancellationToken).ConfigureAwait(false);
            return body;
        }
        return await ReadUnknownLengthAsync(stream, limit, serviceName, cancellationToken).ConfigureAwait(false);
    }

    private static async ValueTask<byte[]> ReadUnknownLengthAsync(Stream stream, long limit, string serviceName, CancellationToken cancellationToken)
    {
        byte[] buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        int total = 0;
        try
        {
            while (true)
            {
                if (total == buffer.Length)
                {
                    var bigger = ArrayPool<byte>.Shared.Rent((int)Math.Min(Array.MaxLength, (long)buffer.Length * 2));
                    buffer.AsSpan(0, total).CopyTo(bigger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = bigger;
                }
                int read = await stream.ReadAsync(buffer.AsMemory(total), cancellationToken).ConfigureAwait(false);
                if (read == 0) break;
                total += read;
                if (total > limit) throw new AwsResponseTooLargeException(serviceName, limit, null);
            }
            return total == 0 ? Array.Empty<byte>() : buffer.AsSpan(0, total).ToArray();
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Errors of every protocol, read into AwsServiceException.
// ---------------------------------------------------------------------------------------------------------------

internal static class AwsErrors
{
    // What an error answer says, in any protocol.
    internal readonly record struct Details(string? Code, string? Message, string? RequestId, string? HostId, string? Fault, string? Reason);

    // The error in an answer, or null when it is a success.
    public static AwsServiceException? ReadIfError(AwsService service, string? operation, AwsResponse answer, HttpResponseMessage response,
        AwsCredentials? credentials, TimeProvider clock, TimeSpan clockOffset, int attempt)
    {
        int status = (int)answer.StatusCode;
        bool success = status is >= 200 and <= 299;
        if (success && !CanFailWith200(service, operation, answer.Body.Span)) return null;
        var details = Read(answer);
        if (success && details.Code is null) return null; // an S3 answer that only looked like an error
        var statusCode = success ? HttpStatusCode.InternalServerError : answer.StatusCode; // S3's 200 error is a server error, retried
        string code = details.Code ?? CodeFromStatus(statusCode);
        string message = Redact(details.Message ?? (answer.Body.Length > 0 ? Json.Clip(answer.Body.Span) : response.ReasonPhrase ?? "(no message)"), credentials);
        // A Retry-After date is on the server's clock (ours, corrected by the skew the client learnt).
        var retryAfter = response.Headers.RetryAfter is { } ra ? ra.Delta ?? (ra.Date is { } d ? d - (clock.GetUtcNow() + clockOffset) : null) : null;
        return new AwsServiceException(service.ServiceId, code, message, statusCode)
        {
            OperationName = operation,
            ErrorType = details.Fault switch
            {
                "Sender" or "Client" or "User" => AwsErrorType.Sender,
                "Receiver" or "Server" or "Service" => AwsErrorType.Receiver,
                _ => status >= 500 || success ? AwsErrorType.Receiver : AwsErrorType.Sender,
            },
            RequestId = answer.RequestId ?? details.RequestId,
            ExtendedRequestId = answer.GetHeader("x-amz-id-2") ?? details.HostId,
            Reason = details.Reason,
            RetryAfter = retryAfter,
            Attempts = attempt,
            ServerDate = response.Headers.Date,
            Body = answer.Body,
        };
    }

    // S3 answers 200 and then writes an <Error> for these operations when they fail partway (the SDKs retry it).
    private static bool CanFailWith200(AwsService service, string? operation, ReadOnlySpan<byte> body) =>
        service.Protocol == AwsProtocol.RestXml && operation is "CopyObject" or "UploadPartCopy" or "CompleteMultipartUpload"
        && body.IndexOf("<Error>"u8) >= 0;

    public static Details Read(AwsResponse answer)
    {
        var body = answer.Body.Span;
        var fromBody = LooksLikeJson(body) ? ReadJson(body) : LooksLikeXml(body) ? ReadXml(body) : default;
        string? code = StripCode(answer.GetHeader("x-amzn-ErrorType")) ?? fromBody.Code;
        string? fault = fromBody.Fault;
        // awsQuery-compatible services (SQS over JSON) send their legacy code, which is what their users match on.
        if (answer.GetHeader("x-amzn-query-error") is { } queryError)
        {
            int semicolon = queryError.IndexOf(';');
            string queryCode = (semicolon < 0 ? queryError : queryError[..semicolon]).Trim();
            if (queryCode.Length > 0) code = queryCode;
            if (semicolon >= 0) fault = queryError[(semicolon + 1)..].Trim();
        }
        return fromBody with { Code = code, Fault = fault };
    }

    private static bool LooksLikeJson(ReadOnlySpan<byte> body) => body.TrimStart(" \t\r\n"u8) is [(byte)'{', ..];

    private static bool LooksLikeXml(ReadOnlySpan<byte> body) => body.TrimStart(" \t\r\n"u8) is [(byte)'<', ..];

    // awsJson and restJson: {"__type": "prefix#Code", "message": "..."}; Lambda adds "Type" (User or Server) and "Reason".
    private static Details ReadJson(ReadOnlySpan<byte> body)
    {
        if (Json.TryReadObject(body, out _) is not { } values) return default;
        string? type = values.GetValueOrDefault("Type");
        string? fault = type is "User" or "Server" ? type : null;
        string? code = values.GetValueOrDefault("__type") ?? values.GetValueOrDefault("code") ?? values.GetValueOrDefault("Code") ?? (fault is null ? type : null);
        string? message = values.GetValueOrDefault("message") ?? values.GetValueOrDefault("Message") ?? values.GetValueOrDefault("errorMessage");
        return new Details(StripCode(code), message, null, null, fault, values.GetValueOrDefault("Reason"));
    }

    // awsQuery (<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/>), ec2Query (<Response><Errors><Error>...
    // <RequestID/>), S3 (<Error><Code/><Message/><RequestId/><HostId/>): the first of each leaf element. A malformed body
    // keeps what was read before the fault; the status names the error otherwise.
    private static Details ReadXml(ReadOnlySpan<byte> body)
    {
        var values = AwsXml.ReadLeaves(body, XmlLeaves, out _);
        return new Details(Leaf("Code"), Leaf("Message"), Leaf("RequestId") ?? Leaf("RequestID"), Leaf("HostId"), Leaf("Type"), null);

        string? Leaf(string name) => NullIfEmpty(values.GetValueOrDefault(name));
    }

    private static readonly string[] XmlLeaves = ["Code", "Message", "RequestId", "RequestID", "HostId", "Type"];

    // "prefix#Code:http://internal.amazon.com/..." -> "Code".
    internal static string? StripCode(string? value)
    {
        if (string.IsNullOrWhiteSpace(value)) return null;
        int hash = value.LastIndexOf('#');
        if (hash >= 0) value = value[(hash + 1)..];
        int colon = value.IndexOf(':');
        if (colon >= 0) value = value[..colon];
        return NullIfEmpty(value.Trim());
    }

    private static string? NullIfEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;

    // An answer without a body (a HEAD, a load balancer's 503) is named from its status.
    internal static string CodeFromStatus(HttpStatusCode status) => (int)status switch
    {
        301 => "PermanentRedirect",
        304 => "NotModified",
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        412 => "PreconditionFailed",
        413 => "RequestEntityTooLarge",
        429 => "TooManyRequestsException",
        500 => "InternalServerError",
        502 => "BadGateway",
        503 => "ServiceUnavailable",
        504 => "GatewayTimeout",
        int other => "Http" + other.ToString(CultureInfo.InvariantCulture),
    };

    internal static bool IsThrottlingCode(string code) => code is
        "Throttling" or "ThrottlingException" or "ThrottledException" or "RequestThrottledException" or "TooManyRequestsException"
        or "ProvisionedThroughputExceededException" or "TransactionInProgressException" or "RequestLimitExceeded"
        or "BandwidthLimitExceeded" or "LimitExceededException" or "RequestThrottled" or "SlowDown" or "PriorRequestNotComplete"
        or "EC2ThrottledException" or "ThrottlingError" or "AWS.SimpleQueueService.RequestThrottled";

    internal static bool IsTransientCode(string code) => code is
        "RequestTimeout" or "RequestTimeoutException" or "InternalError" or "InternalFailure" or "ServiceUnavailable";

    // Lambda says so when too many invocations run at once (the account's or a function's reserved concurrency).
    internal static bool IsConcurrencyThrottle(AwsServiceException e) =>
        e.Reason is { } reason && reason.Contains("ConcurrentInvocationLimitExceeded", StringComparison.Ordinal);

    // A signature error's message echoes the canonical request, which holds the session token when one is signed.
    private static string Redact(string message, AwsCredentials? credentials) =>
        credentials?.SessionToken is { } token && message.Contains(token, StringComparison.Ordinal)
            ? message.Replace(token, "(session token)", StringComparison.Ordinal)
            : message;
}

// ---------------------------------------------------------------------------------------------------------------
// Retries: what is retried, the backoff, the quota, clock-skew correction and (adaptive mode) the rate limiter.
// One per client: the quota, the clock offset and the rate are the client's.
// ---------------------------------------------------------------------------------------------------------------

internal sealed class RetryPolicy
{
    public const int QuotaCapacity = 500, RetryCost = 5, TimeoutRetryCost = 10;
    // A throttled call of a fan-out that makes progress is sent again up to this many attempts in all.
    public const int MaxThrottledAttemptsInFanOut = 10;
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan ClockSkewThreshold = TimeSpan.FromMinutes(5);

    private readonly TimeSpan _baseDelay;
    private readonly TimeProvider _clock;
    private readonly AdaptiveRateLimiter? _rateLimiter;
    private int _tokens = QuotaCapacity;
    private long _clockOffsetTicks; // server time minus local time, learnt from a clock-skew error

    public RetryPolicy(AwsRetryMode mode, int maxAttempts, TimeSpan baseDelay, TimeProvider clock)
    {
        if (maxAttempts < 1)
            throw new ArgumentOutOfRangeException(nameof(maxAttempts), maxAttempts, "MaxAttempts must be at least 1 (1 turns retries off).");
        if (baseDelay < TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(baseDelay), baseDelay, "RetryBaseDelay must not be negative.");
        Mode = mode;
        MaxAttempts = maxAttempts;
        _baseDelay = baseDelay;
        _clock = clock;
        _rateLimiter = mode == AwsRetryMode.Adaptive ? new AdaptiveRateLimiter(clock) : null;
    }

    public AwsRetryMode Mode { get; }
    public int MaxAttempts { get; }
    public int Tokens => Volatile.Read(ref _tokens);
    public TimeSpan ClockOffset => TimeSpan.FromTicks(Interlocked.Read(ref _clockOffsetTicks));
    internal AdaptiveRateLimiter? RateLimiter => _rateLimiter;

    // Throttling and transient errors; never a function error (a success to the pipeline) nor a 4xx that is the caller's.
    public static bool IsRetryable(Exception failure) => failure switch
    {
        AwsServiceException e => e.IsThrottling || (int)e.StatusCode is 500 or 502 or 503 or 504 || AwsErrors.IsTransientCode(e.ErrorCode),
        AwsTimeoutException or AwsConnectionException => true,
        _ => false,
    };

    public ValueTask BeforeAttemptAsync(CancellationToken cancellationToken) =>
        _rateLimiter?.AcquireAsync(cancellationToken) ?? default;

    public void AfterAttempt(bool throttled) => _rateLimiter?.Update(throttled);

    // Full jitter: random below min(base * 2^(attempt-1), 20 s), in whole milliseconds from 1, so that every wait goes
    // through the clock's timer (Task.Delay does not ask the clock for a wait of 0).
    public TimeSpan Backoff(int attempt)
    {
        long ceiling = (long)Math.Min(_baseDelay.TotalMilliseconds * Math.Pow(2, Math.Min(attempt, 31) - 1), MaxBackoff.TotalMilliseconds);
        return ceiling <= 1 ? TimeSpan.Zero : TimeSpan.FromMilliseconds(Random.Shared.NextInt64(1, ceiling));
    }

    // The quota: a failing service drains it, so that retries stop instead of multiplying the load.
    public bool TryTakeRetryTokens(int cost)
    {
        int current = Volatile.Read(ref _tokens);
        while (true)
        {
            if (current < cost) return false;
            int seen = Interlocked.CompareExchange(ref _tokens, current - cost, current);
            if (seen == current) return true;
            current = seen;
        }
    }

    // A success gives back what its retries took, or 1 when it took none.
    public void OnSuccess(int tokensTaken)
    {
        int amount = tokensTaken == 0 ? 1 : tokensTaken;
        int current = Volatile.Read(ref _tokens);
        while (current < QuotaCapacity)
        {
            int seen = Interlocked.CompareExchange(ref _tokens, Math.Min(QuotaCapacity, current + amount), current);
            if (seen == current) return;
            current = seen;
        }
    }

    // The corrected offset when the server's clock differs by 5 minutes or more from the time the failed attempt was
    // signed with. Concurrent calls signed before a correction each see the difference and are retried; each confirms
    // the offset it measured once it succeeds, so whichever lands last will do.
    public bool TryCorrectClockSkew(AwsServiceException e, TimeSpan signedOffset, out TimeSpan corrected)
    {
        corrected = default;
        bool skewError = e.ErrorCode is "RequestTimeTooSkewed" or "RequestExpired" or "RequestInTheFuture"
            || (e.ErrorCode is "InvalidSignatureException" or "SignatureDoesNotMatch" or "AuthFailure"
                && (e.ErrorMessage.Contains("Signature expired", StringComparison.OrdinalIgnoreCase)
                    || e.ErrorMessage.Contains("Signature not yet current", StringComparison.OrdinalIgnoreCase)));
        if (!skewError || e.ServerDate is not { } serverDate) return false;
        var offset = serverDate - _clock.GetUtcNow();
        if ((offset - signedOffset).Duration() < ClockSkewThreshold) return false;
        corrected = offset;
        return true;
    }

    // The offset a call was accepted with becomes the client's: a server's Date alone never moves the client's clock.
    public void ConfirmClockOffset(TimeSpan offset) => Interlocked.Exchange(ref _clockOffsetTicks, offset.Ticks);
}

// Adaptive mode's client-side rate limiter, as the AWS SDKs have it: off until the first throttle; then every attempt
// takes a token from a bucket whose fill rate drops to beta (0.7) times the rate measured at each throttle and grows back
// along a cubic curve, never above twice the measured send rate.
internal sealed class AdaptiveRateLimiter
{
    private const double Beta = 0.7, Scale = 0.4, Smoothing = 0.8, MinFillRate = 0.5, BucketSeconds = 0.5;

    private readonly TimeProvider _clock;
    private readonly object _gate = new();
    private bool _enabled;
    // Token bucket.
    private double _fillRate = MinFillRate, _capacity = 1, _tokens, _lastRefill = -1;
    // Measured send rate.
    private double _measuredRate, _bucketStart, _count;
    // CUBIC.
    private double _lastMaxRate, _lastThrottle, _k;

    public AdaptiveRateLimiter(TimeProvider clock)
    {
        _clock = clock;
        _lastThrottle = Now();
        _bucketStart = Math.Floor(Now() / BucketSeconds) * BucketSeconds;
    }

    public bool Enabled { get { lock (_gate) return _enabled; } }
    public double FillRate { get { lock (_gate) return _fillRate; } }
    public double MeasuredRate { get { lock (_gate) return _measuredRate; } }

    // Seconds on the client's clock (its UTC time: a test clock moves it).
    private double Now() => _clock.GetUtcNow().UtcTicks / (double)TimeSpan.TicksPerSecond;

    // Waits until a token is there (only once a throttle has been seen).
    public async ValueTask AcquireAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            TimeSpan wait;
            lock (_gate)
            {
                if (!_enabled) return;
                Refill();
                if (_tokens >= 1)
                {
                    _tokens -= 1;
                    return;
                }
                wait = TimeSpan.FromSeconds((1 - _tokens) / _fillRate);
            }
            await Task.Delay(wait < TimeSpan.FromMilliseconds(1) ? TimeSpan.FromMilliseconds(1) : wait, _clock, cancellationToken).ConfigureAwait(false);
        }
    }

    // After every attempt: measure the send rate, then move the fill rate down (throttled) or along the cubic (not).
    public void Update(bool throttled)
    {
        lock (_gate)
        {
            double now = Now();
            MeasureRate(now);
            double newRate;
            if (throttled)
            {
                double rateToUse = _enabled ? Math.Min(_measuredRate, _fillRate) : _measuredRate;
                _lastMaxRate = rateToUse;
                _k = Math.Cbrt(_lastMaxRate * (1 - Beta) / Scale);
                _lastThrottle = now;
                newRate = rateToUse * Beta;
                _enabled = true;
            }
            else
            {
                newRate = Scale * Math.Pow(now - _lastThrottle - _k, 3) + _lastMaxRate;
            }
            SetFillRate(Math.Min(newRate, 2 * _measuredRate));
        }
    }

    private void MeasureRate(double now)
    {
        double bucket = Math.Floor(now / BucketSeconds) * BucketSeconds;
        _count++;
        if (bucket > _bucketStart)
        {
            double rate = _count / (bucket - _bucketStart);
            _measuredRate = rate * Smoothing + _measuredRate * (1 - Smoothing);
            _count = 0;
            _bucketStart = bucket;
        }
    }

    private void SetFillRate(double rate)
    {
        Refill();
        _fillRate = Math.Max(rate, MinFillRate);
        _capacity = Math.Max(rate, 1);
        _tokens = Math.Min(_tokens, _capacity);
    }

    private void Refill()
    {
        double now = Now();
        if (_lastRefill >= 0) _tokens = Math.Min(_capacity, _tokens + (now - _lastRefill) * _fillRate);
        _lastRefill = now;
    }
}

// A map filled first come up to a size, then only read: what a client or the process makes once per path or
// function and uses on every call. Lookups take no lock.
internal sealed class FirstComeCache<TKey, TValue>(int capacity) where TKey : notnull
{
    private readonly ConcurrentDictionary<TKey, TValue> _items = new();
    private int _count;

    public bool TryGetValue(TKey key, [MaybeNullWhen(false)] out TValue value) => _items.TryGetValue(key, out value);

    // Whether the value is now kept (`kept`: it, or one another thread kept first); false when the cache is full.
    public bool TryAdd(TKey key, TValue value, out TValue kept)
    {
        kept = value;
        if (Volatile.Read(ref _count) >= capacity) return false;
        if (_items.TryAdd(key, value)) Interlocked.Increment(ref _count);
        else kept = _items[key]; // entries are never removed
        return true;
    }
}

// The attempt timeouts. An attempt's token is cancelled when the attempt runs past its deadline or the caller cancels.
internal sealed class AttemptTimeouts(TimeProvider clock)
{
    // The longest delay a timer takes (CancelAfter throws beyond it): about 49.7 days. A longer timeout means no limit.
    internal static readonly TimeSpan MaxTimerDelay = TimeSpan.FromMilliseconds(uint.MaxValue - 1);

    // Positive or infinite; any positive value is accepted, those beyond what a timer takes meaning no limit.
    public static void Validate(TimeSpan timeout, string parameterName)
    {
        if (timeout <= TimeSpan.Zero && timeout != Timeout.InfiniteTimeSpan)
            throw new ArgumentOutOfRangeException(parameterName, timeout, "The timeout must be positive or Timeout.InfiniteTimeSpan.");
    }

    // Null: no limit (the caller's token alone). End the deadline when the attempt is over.
    public AttemptDeadline? Start(TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (timeout == Timeout.InfiniteTimeSpan || timeout > MaxTimerDelay) return null;
        var deadline = ReferenceEquals(clock, TimeProvider.System) ? AttemptDeadline.Rent(timeout) : AttemptDeadline.OnClock(timeout, clock);
        deadline.Link(cancellationToken);
        return deadline;
    }
}

// One attempt's deadline. With the system clock it is a pooled slot: the deadline is a number written in it, and its
// timer is armed only when it would not fire by then. A timer that fires early (at an earlier attempt's deadline) finds
// a later one and arms itself for the rest; one that fires between attempts rests. So a busy slot costs one timer
// operation per timeout period, not two per attempt (arming and disarming a token source's timer was about 5% of a
// fan-out call's CPU). With another clock (tests), a token source on that clock's timer per attempt.
internal sealed class AttemptDeadline
{
    private const int Idle = 0, Running = 1, Expired = 2;
    private const int MaxSpares = 512; // besides one per thread: a few hundred cover any concurrency
    [ThreadStatic] private static AttemptDeadline? t_spare;
    private static readonly ConcurrentQueue<AttemptDeadline> s_spares = new();
    private static int s_spareCount;

    private readonly object _gate = new(); // the attempt and the timer's callback
    private readonly ITimer? _timer;       // null: the source has its clock's own timer
    private CancellationTokenSource _source;
    private CancellationTokenRegistration _caller;
    private long _due = long.MaxValue;      // the attempt's deadline, in Environment.TickCount64 milliseconds
    private long _armedFor = long.MaxValue; // when the timer fires; MaxValue: it is not armed
    private int _state;

    private AttemptDeadline(CancellationTokenSource source, bool pooled)
    {
        _source = source;
        if (!pooled) return;
        // The timer's callback runs with no caller's ExecutionContext (its AsyncLocals are nobody's business there).
        bool suppressed = ExecutionContext.IsFlowSuppressed();
        if (!suppressed) ExecutionContext.SuppressFlow();
        try { _timer = TimeProvider.System.CreateTimer(static s => ((AttemptDeadline)s!).OnTimer(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan); }
        finally { if (!suppressed) ExecutionContext.RestoreFlow(); }
    }

    public CancellationToken Token => _source.Token;

    // By the deadline or by the caller: the caller's token says which.
    public bool IsCancellationRequested => _source.IsCancellationRequested;

    public static AttemptDeadline OnClock(TimeSpan timeout, TimeProvider clock) => new(new CancellationTokenSource(timeout, clock), pooled: false);

    public static AttemptDeadline Rent(TimeSpan timeout)
    {
        var deadline = t_spare;
        if (deadline is not null) t_spare = null;
        else if (s_spares.TryDequeue(out deadline)) Interlocked.Decrement(ref s_spareCount);
        else deadline = new AttemptDeadline(new CancellationTokenSource(), pooled: true);
        deadline.Begin(timeout);
        return deadline;
    }

    private void Begin(TimeSpan timeout)
    {
        long now = Environment.TickCount64;
        long due = now + (long)Math.Ceiling(timeout.TotalMilliseconds);
        lock (_gate)
        {
            _state = Running;
            _due = due;
            if (_armedFor <= due) return; // it fires by then, and looks again
            _armedFor = due;
            _timer!.Change(TimeSpan.FromMilliseconds(due - now), Timeout.InfiniteTimeSpan);
        }
    }

    public void Link(CancellationToken cancellationToken)
    {
        if (cancellationToken.CanBeCanceled)
            _caller = cancellationToken.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), _source);
    }

    private void OnTimer()
    {
        CancellationTokenSource expired;
        lock (_gate)
        {
            _armedFor = long.MaxValue;
            if (_state != Running) return; // between attempts: the next one arms it
            long now = Environment.TickCount64;
            if (now < _due)
            {
                _armedFor = _due;
                _timer!.Change(TimeSpan.FromMilliseconds(_due - now), Timeout.InfiniteTimeSpan);
                return;
            }
            _state = Expired;
            expired = _source; // the attempt's, even if it ends meanwhile and the slot gets a new source
        }
        try { expired.Cancel(); }
        catch (AggregateException) { } // a registration's callback failed; the attempt fails as timed out anyway
    }

    // The attempt is over: the slot goes back to the pool, with a new source if this one was cancelled.
    public void End()
    {
        _caller.Dispose(); // waits for a caller's cancellation in progress, so none comes after the slot is reused
        _caller = default;
        if (_timer is null)
        {
            _source.Dispose();
            return;
        }
        bool expired;
        lock (_gate)
        {
            expired = _state == Expired;
            _state = Idle;
        }
        if (expired || _source.IsCancellationRequested)
        {
            // A cancelled source cannot be reset. An expired one is dropped, not disposed: the timer's callback may still
            // be cancelling it (outside the lock); one the caller cancelled is done with (its registration is gone).
            if (!expired) _source.Dispose();
            _source = new CancellationTokenSource();
        }
        Return();
    }

    private void Return()
    {
        if (t_spare is null)
        {
            t_spare = this;
            return;
        }
        if (Interlocked.Increment(ref s_spareCount) <= MaxSpares)
        {
            s_spares.Enqueue(this);
            return;
        }
        Interlocked.Decrement(ref s_spareCount);
        _timer!.Dispose();
        _source.Dispose();
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The fan-out: its concurrency limiter, its engine (one, consumed three ways), its input.
// ---------------------------------------------------------------------------------------------------------------

// Adaptive concurrency for a fan-out. Each attempt notes how many were in flight when it started. A throttle that says
// too many run at once ("ConcurrentInvocationLimitExceeded") bounds the service's limit from above: the limit becomes
// one less than the count the throttled attempt started at (never more than it was). Each success raises it by
// 1/limit, about one a round of calls, up to MaxConcurrency: so it probes just above the service's limit, and about one
// attempt in `limit` is throttled once it is found.
internal sealed class ConcurrencyLimiter(int maxConcurrency)
{
    private readonly object _gate = new();
    private readonly Queue<TaskCompletionSource<int>> _waiters = new();
    private double _limit = maxConcurrency;
    private int _inFlight;
    private long _throttles;

    public int Limit { get { lock (_gate) return (int)_limit; } }
    public long Throttles => Interlocked.Read(ref _throttles);

    // Returns how many attempts are in flight with this one.
    public ValueTask<int> AcquireAsync(CancellationToken cancellationToken)
    {
        TaskCompletionSource<int> waiter;
        lock (_gate)
        {
            if (_waiters.Count == 0 && _inFlight < (int)_limit) return new(++_inFlight);
            waiter = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters.Enqueue(waiter);
        }
        return WaitAsync(waiter, cancellationToken);
    }

    private static async ValueTask<int> WaitAsync(TaskCompletionSource<int> waiter, CancellationToken cancellationToken)
    {
        using (cancellationToken.UnsafeRegister(static (s, token) => ((TaskCompletionSource<int>)s!).TrySetCanceled(token), waiter))
            return await waiter.Task.ConfigureAwait(false);
    }

    public void Release(int startedAt, bool concurrencyThrottled, bool succeeded)
    {
        lock (_gate)
        {
            _inFlight--;
            if (concurrencyThrottled)
            {
                _throttles++;
                _limit = Math.Max(1, Math.Min(_limit, startedAt - 1));
            }
            else if (succeeded) _limit = Math.Min(maxConcurrency, _limit + 1 / _limit);
            // Wake waiters while there is room; a waiter that was cancelled meanwhile gives its turn to the next.
            while (_inFlight < (int)_limit && _waiters.TryDequeue(out var waiter))
                if (waiter.TrySetResult(_inFlight + 1)) _inFlight++;
        }
    }
}

// What the calls of one fan-out run share: the concurrency limiter, and whether the run is making progress.
internal sealed class FanOutContext(ConcurrencyLimiter? limiter)
{
    private long _successes;
    public ConcurrencyLimiter? Limiter { get; } = limiter;
    public long Successes => Interlocked.Read(ref _successes);
    public void OnSuccess() => Interlocked.Increment(ref _successes);
}

internal static class FanOut
{
    // The options, or the defaults; refused at the call, not at the first MoveNextAsync.
    private static AwsFanOutOptions Checked(AwsFanOutOptions? options)
    {
        options ??= AwsFanOutOptions.Default;
        if (options.MaxConcurrency < 1)
            throw new ArgumentOutOfRangeException(nameof(options), options.MaxConcurrency, "MaxConcurrency must be at least 1.");
        return options;
    }

    // The engine, streamed: outcomes come out as they complete (the collect-all ways below place them instead).
    public static IAsyncEnumerable<AwsOutcome<TRequest, TResponse>> Run<TRequest, TResponse>(Func<FanOutInput<TRequest>> input,
        Func<TRequest, FanOutContext, CancellationToken, Task<TResponse>> send, AwsFanOutOptions? options, bool failFast,
        CancellationToken cancellationToken)
    {
        return RunAsync(input, send, Checked(options), failFast, cancellationToken);
    }

    private static async IAsyncEnumerable<AwsOutcome<TRequest, TResponse>> RunAsync<TRequest, TResponse>(Func<FanOutInput<TRequest>> input,
        Func<TRequest, FanOutContext, CancellationToken, Task<TResponse>> send, AwsFanOutOptions options, bool failFast,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var run = new FanOutRun<TRequest, TResponse>(input(), send, options, failFast, cancellationToken);
        try
        {
            run.Start();
            var reader = run.Outcomes;
            while (await reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
            {
                while (reader.TryRead(out var outcome))
                {
                    run.Consumed();
                    yield return outcome;
                }
            }
            run.ThrowIfInputFailed();
            cancellationToken.ThrowIfCancellationRequested();
            run.ReportFinal();
        }
        finally
        {
            // Normal end, an early exit, a failure or a cancellation: stop the workers and wait until none is left,
            // so that no call outlives the run.
            await run.StopAsync().ConfigureAwait(false);
        }
    }

    // Collect-all, failing fast: the responses in input order, or the first failure.
    public static Task<IReadOnlyList<TResponse>> CollectResponsesAsync<TRequest, TResponse>(Func<FanOutInput<TRequest>> input,
        Func<TRequest, FanOutContext, CancellationToken, Task<TResponse>> send, AwsFanOutOptions? options, CancellationToken cancellationToken)
    {
        return CollectAsync(input, send, Checked(options), new Collected<TRequest, TResponse, TResponse>(static outcome => outcome.Response!, failFast: true), cancellationToken);
    }

    // Collect-all, settled: every outcome in input order.
    public static Task<IReadOnlyList<AwsOutcome<TRequest, TResponse>>> CollectOutcomesAsync<TRequest, TResponse>(Func<FanOutInput<TRequest>> input,
        Func<TRequest, FanOutContext, CancellationToken, Task<TResponse>> send, AwsFanOutOptions? options, CancellationToken cancellationToken)
    {
        return CollectAsync(input, send, Checked(options), new Collected<TRequest, TResponse, AwsOutcome<TRequest, TResponse>>(static outcome => outcome, failFast: false), cancellationToken);
    }

    // Each outcome is placed at its input position by the worker that made it: no channel and no consumer to wait for,
    // and no slots (the workers, at most MaxConcurrency, bound what is read ahead). The run ends when its last worker
    // does, or when it is stopped (a failure, the input failing, the caller's token), and then nothing is left in
    // flight when this returns.
    private static async Task<IReadOnlyList<TItem>> CollectAsync<TRequest, TResponse, TItem>(Func<FanOutInput<TRequest>> input,
        Func<TRequest, FanOutContext, CancellationToken, Task<TResponse>> send, AwsFanOutOptions options,
        Collected<TRequest, TResponse, TItem> collected, CancellationToken cancellationToken)
    {
        var run = new FanOutRun<TRequest, TResponse>(input(), send, options, collected.FailFast, cancellationToken, collected);
        try
        {
            run.Start();
            await run.Outcomes.Completion.WaitAsync(run.StopToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (run.StopToken.IsCancellationRequested)
        {
            // Stopped: what stopped it is thrown below. A worker blocked in the input is not waited for.
        }
        finally
        {
            // After this no call is in flight and no outcome is being placed: a failure that stopped the run is in.
            await run.StopAsync().ConfigureAwait(false);
        }
        collected.ThrowIfFailed();
        run.ThrowIfInputFailed();
        cancellationToken.ThrowIfCancellationRequested();
        run.ReportFinal();
        return collected.Items;
    }
}

// Where a collect-all run's workers put the outcomes, as each completes.
internal interface IOutcomeSink<TRequest, TResponse>
{
    void Place(in AwsOutcome<TRequest, TResponse> outcome);
}

// The items of a collect-all run in input order; failing fast, the first failure instead (the run stops at it).
internal sealed class Collected<TRequest, TResponse, TItem>(Func<AwsOutcome<TRequest, TResponse>, TItem> select, bool failFast)
    : IOutcomeSink<TRequest, TResponse>
{
    private readonly ChunkedList<TItem> _items = new();
    private readonly object _gate = new(); // not the list: the caller gets that
    private Exception? _failure;

    public bool FailFast => failFast;

    public IReadOnlyList<TItem> Items => _items;

    public void Place(in AwsOutcome<TRequest, TResponse> outcome)
    {
        lock (_gate)
        {
            if (failFast && outcome.Error is not null) _failure ??= outcome.Error;
            else if (_failure is null) Place(outcome.Index, select(outcome));
        }
    }

    // At its input position; those before it not placed yet hold the default until they are.
    private void Place(long index, TItem item)
    {
        if (index >= int.MaxValue)
            throw new InvalidOperationException("More than 2^31 - 1 requests cannot be collected into a list; stream the outcomes instead (SendEachAsync, InvokeEachAsync).");
        _items.Set((int)index, item);
    }

    public void ThrowIfFailed()
    {
        Exception? failure;
        lock (_gate) failure = _failure;
        if (failure is not null) ExceptionDispatchInfo.Throw(failure);
    }
}

// A collect-all run's items in input order, kept in chunks of 1,024: growing copies nothing, and no chunk is large
// enough for the large object heap. A List doubles into one there (10,000 references: a 128 KB array, and every
// smaller one before it copied), and large allocations bring on gen2 collections: collecting 10,000 Lambda responses
// took one every other run. The first chunk grows from 16 items as a List would, so that a fan-out of a few calls
// keeps a few slots. Read-only to the caller.
[DebuggerDisplay("Count = {Count}")]
[DebuggerTypeProxy(typeof(ChunkedList<>.DebugView))]
internal sealed class ChunkedList<T> : IReadOnlyList<T>, IList<T>
{
    // The debugger shows the items, not the chunks.
    private sealed class DebugView(ChunkedList<T> list)
    {
        [DebuggerBrowsable(DebuggerBrowsableState.RootHidden)]
        public T[] Items
        {
            get
            {
                var items = new T[list.Count];
                list.CopyTo(items, 0);
                return items;
            }
        }
    }

    private const int ChunkShift = 10, ChunkLength = 1 << ChunkShift, FirstLength = 16; // a chunk: 40 KB of AwsOutcome, 8 KB of references
    private T[]?[] _chunks = [];
    private int _count;

    public int Count => _count;

    public T this[int index]
    {
        get
        {
            if ((uint)index >= (uint)_count)
                throw new ArgumentOutOfRangeException(nameof(index), index, $"The index must be at least 0 and less than Count ({_count}).");
            return _chunks[index >> ChunkShift]![index & (ChunkLength - 1)];
        }
    }

    // Item `index` set; the list grows to it, items before it not set yet holding the default.
    internal void Set(int index, T item)
    {
        int chunk = index >> ChunkShift, offset = index & (ChunkLength - 1);
        if (chunk >= _chunks.Length) Array.Resize(ref _chunks, Math.Max(chunk + 1, _chunks.Length * 2));
        var slots = _chunks[chunk];
        if (slots is null || offset >= slots.Length) slots = MakeRoom(chunk, offset);
        slots[offset] = item;
        if (index >= _count) _count = index + 1;
    }

    // Room for `offset` in `chunk`, and every chunk before it whole, so that every index below Count can be read.
    private T[] MakeRoom(int chunk, int offset)
    {
        for (int i = 0; i < chunk; i++)
            if (_chunks[i] is not { Length: ChunkLength }) _chunks[i] = Grown(_chunks[i], ChunkLength);
        int length = chunk > 0 ? ChunkLength : Math.Max(offset + 1, Math.Max(FirstLength, (_chunks[0]?.Length ?? 0) * 2));
        return _chunks[chunk] = Grown(_chunks[chunk], Math.Min(ChunkLength, length));
    }

    private static T[] Grown(T[]? had, int length)
    {
        var grown = new T[length];
        had?.CopyTo(grown, 0);
        return grown;
    }

    public IEnumerator<T> GetEnumerator()
    {
        for (int i = 0; i < _count; i++) yield return _chunks[i >> ChunkShift]![i & (ChunkLength - 1)];
    }

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();

    public int IndexOf(T item)
    {
        for (int i = 0; i < _count; i++)
            if (EqualityComparer<T>.Default.Equals(_chunks[i >> ChunkShift]![i & (ChunkLength - 1)], item)) return i;
        return -1;
    }

    public bool Contains(T item) => IndexOf(item) >= 0;

    public void CopyTo(T[] array, int arrayIndex)
    {
        ArgumentNullException.ThrowIfNull(array);
        ArgumentOutOfRangeException.ThrowIfNegative(arrayIndex);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(arrayIndex, array.Length);
        if (array.Length - arrayIndex < _count)
            throw new ArgumentException($"The array needs at least {(long)arrayIndex + _count} elements to take the list's {_count} items from index {arrayIndex}; it has {array.Length}.", nameof(array));
        for (int copied = 0; copied < _count; copied += ChunkLength)
            _chunks[copied >> ChunkShift].AsSpan(0, Math.Min(ChunkLength, _count - copied)).CopyTo(array.AsSpan(arrayIndex + copied));
    }

    public bool IsReadOnly => true;

    T IList<T>.this[int index] { get => this[index]; set => throw ReadOnly(); }
    void ICollection<T>.Add(T item) => throw ReadOnly();
    void IList<T>.Insert(int index, T item) => throw ReadOnly();
    bool ICollection<T>.Remove(T item) => throw ReadOnly();
    void IList<T>.RemoveAt(int index) => throw ReadOnly();
    void ICollection<T>.Clear() => throw ReadOnly();

    private static NotSupportedException ReadOnly() => new("A fan-out's results are read-only; copy them (ToList) to change them.");
}

/// <summary>
/// One fan-out run. Workers (at most MaxConcurrency, started as requests turn up) each take a slot, read the next
/// request, send it and post the outcome; the consumer gives the slot back when it takes the outcome. So the requests
/// read but not yet consumed, the calls in flight among them, never exceed MaxConcurrency. A collect-all run has a sink
/// instead of a consumer: the worker places the outcome there, taken at once, so its workers take no slots.
/// </summary>
internal sealed class FanOutRun<TRequest, TResponse>
{
    private readonly FanOutInput<TRequest> _input;
    private readonly Func<TRequest, FanOutContext, CancellationToken, Task<TResponse>> _send;
    private readonly FanOutContext _context;
    private readonly IProgress<AwsFanOutProgress>? _progress;
    private readonly bool _failFast;
    private readonly int _maxConcurrency;
    private readonly CancellationTokenSource _stop;
    private readonly SemaphoreSlim _slots;
    // Synchronous continuations: a consumer waiting for an outcome takes it on the worker's thread as it is posted, and
    // frees its slot there, so that the worker finds a slot at once; otherwise each outcome cost a thread-pool hop to
    // wake the consumer and another to wake the worker it freed a slot for.
    private readonly Channel<AwsOutcome<TRequest, TResponse>> _outcomes = Channel.CreateUnbounded<AwsOutcome<TRequest, TResponse>>(
        new UnboundedChannelOptions { SingleReader = true, AllowSynchronousContinuations = true });
    private readonly TaskCompletionSource _idle = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Action _onRequestRead;
    private int _workers, _started, _inFlight, _stopped;
    private int _reading, _sending, _consumerDone, _inputDisposed, _holders = 2; // workers in the input, workers with a call; see Release
    private long _completed, _failed;
    private Exception? _inputFailure;
    private readonly IOutcomeSink<TRequest, TResponse>? _sink; // collect-all: outcomes go there, not to the channel

    public FanOutRun(FanOutInput<TRequest> input, Func<TRequest, FanOutContext, CancellationToken, Task<TResponse>> send,
        AwsFanOutOptions options, bool failFast, CancellationToken cancellationToken, IOutcomeSink<TRequest, TResponse>? sink = null)
    {
        _sink = sink;
        _input = input;
        _send = send;
        _progress = options.Progress;
        _failFast = failFast;
        // int.MaxValue reads as "no limit": capped so that the slots' count (the free slots, plus the stop's wake-up
        // release of as many again) never overflows.
        _maxConcurrency = Math.Min(options.MaxConcurrency, int.MaxValue / 2);
        _context = new FanOutContext(options.AdaptiveConcurrency ? new ConcurrencyLimiter(options.MaxConcurrency) : null);
        _slots = new SemaphoreSlim(_maxConcurrency); // no maximum: a stop releases a slot for every worker that may wait
        _stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _stop.Token.UnsafeRegister(static run => ((FanOutRun<TRequest, TResponse>)run!).WakeWaitingWorkers(), this);
        _onRequestRead = OnRequestRead;
    }

    // The outcomes as they complete; with a sink, only its completion, when the last worker is done.
    public ChannelReader<AwsOutcome<TRequest, TResponse>> Outcomes => _outcomes.Reader;

    // Cancelled when the run stops (a failure that fails fast, the input failing, the caller's token).
    public CancellationToken StopToken => _stop.Token;

    public void Start() => StartWorker();

    // The consumer took an outcome: its slot is free for the next request.
    public void Consumed() => _slots.Release();

    public void ThrowIfInputFailed()
    {
        if (_inputFailure is not null) ExceptionDispatchInfo.Throw(_inputFailure);
    }

    public void ReportFinal() =>
        _progress?.Report(new AwsFanOutProgress(Interlocked.Read(ref _completed), Interlocked.Read(ref _failed), 0));

    // Stops the run and waits until no call is in flight: no call outlives the run. A worker blocked in the input (an
    // enumerator that ignores cancellation) is not waited for: its read is abandoned, and the input is disposed when it
    // returns.
    public async ValueTask StopAsync()
    {
        Stop();
        if (Volatile.Read(ref _sending) > 0) await _idle.Task.ConfigureAwait(false);
        // Either this sees no read in progress, or the read in progress sees the consumer gone: one of them disposes.
        Interlocked.Exchange(ref _consumerDone, 1);
        if (Interlocked.CompareExchange(ref _reading, 0, 0) == 0) await DisposeInputAsync().ConfigureAwait(false);
        Release();
    }

    private async ValueTask DisposeInputAsync()
    {
        if (Interlocked.Exchange(ref _inputDisposed, 1) == 0) await _input.DisposeAsync().ConfigureAwait(false);
    }

    // The run's own resources go when both the consumer (StopAsync) and the last worker are done with them.
    private void Release()
    {
        if (Interlocked.Decrement(ref _holders) != 0) return;
        _stop.Dispose();
        _slots.Dispose();
    }

    private void Stop()
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0) return;
        try { _stop.Cancel(); }
        catch (AggregateException) { } // a callback registered on the caller's token failed; the run is stopping anyway
    }

    // Workers wait for a slot without a token (a token costs every wait a promise and a registration): a stop, by
    // Stop() or by the caller's token, gives each of them a slot to wake with; they see the stop and leave.
    private void WakeWaitingWorkers()
    {
        try { _slots.Release(_maxConcurrency); }
        catch (ObjectDisposedException) { } // the run is over: nobody waits
    }

    private void StartWorker()
    {
        Interlocked.Increment(ref _workers);
        _started++;
        _ = Task.Run(WorkerAsync);
    }

    private async Task WorkerAsync()
    {
        var token = _stop.Token;
        try
        {
            // A collect-all run's outcomes are taken as they are placed: its workers alone bound what is read ahead,
            // so they take no slot (two operations on a lock all workers share, a call).
            bool takesSlots = _sink is null;
            while (!_input.Exhausted && Volatile.Read(ref _stopped) == 0)
            {
                if (takesSlots) await _slots.WaitAsync().ConfigureAwait(false);
                bool posted = false;
                try
                {
                    token.ThrowIfCancellationRequested(); // woken by a stop
                    var (hasRequest, index, request) = await ReadAsync(token).ConfigureAwait(false);
                    if (!hasRequest) break;
                    // Counted before the stop is looked at, so that StopAsync either sees this call or this worker sees the stop.
                    Interlocked.Increment(ref _sending);
                    if (Volatile.Read(ref _stopped) != 0)
                    {
                        EndSending();
                        break;
                    }
                    Interlocked.Increment(ref _inFlight);
                    long started = Stopwatch.GetTimestamp();
                    AwsOutcome<TRequest, TResponse> done;
                    try
                    {
                        var response = await _send(request, _context, token).ConfigureAwait(false);
                        done = new AwsOutcome<TRequest, TResponse>(index, request, response, Stopwatch.GetElapsedTime(started));
                    }
                    catch (OperationCanceledException) when (token.IsCancellationRequested)
                    {
                        Interlocked.Decrement(ref _inFlight);
                        EndSending();
                        break; // the run was stopped: this request has no outcome
                    }
                    catch (Exception e)
                    {
                        done = new AwsOutcome<TRequest, TResponse>(index, request, e, Stopwatch.GetElapsedTime(started));
                    }
                    try
                    {
                        posted = Post(done);
                    }
                    finally
                    {
                        EndSending();
                    }
                }
                finally
                {
                    if (takesSlots && !posted) _slots.Release();
                }
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            // The input itself failed (its enumerator threw): the run cannot go on.
            Interlocked.CompareExchange(ref _inputFailure, e, null);
            Stop();
        }
        finally
        {
            if (Interlocked.Decrement(ref _workers) == 0)
            {
                _outcomes.Writer.TryComplete();
                Release();
            }
        }
    }

    // The next request, unless the run has stopped. Counted while it reads, so that a stop knows whether the input is
    // busy (and must be disposed by the read, when it returns).
    private async ValueTask<(bool HasRequest, long Index, TRequest Request)> ReadAsync(CancellationToken token)
    {
        Interlocked.Increment(ref _reading);
        try
        {
            if (Volatile.Read(ref _stopped) != 0) return default;
            return await _input.NextAsync(_onRequestRead, token).ConfigureAwait(false);
        }
        finally
        {
            if (Interlocked.Decrement(ref _reading) == 0 && Interlocked.CompareExchange(ref _consumerDone, 0, 0) != 0)
                await DisposeInputAsync().ConfigureAwait(false);
        }
    }

    private void EndSending()
    {
        if (Interlocked.Decrement(ref _sending) == 0 && Volatile.Read(ref _stopped) != 0) _idle.TrySetResult();
    }

    // Posts the outcome (or places it in the sink), then tells the listeners. A listener that throws (an IProgress, a
    // metrics callback) neither loses the outcome nor stops the run: its exception is the listener's problem, not the call's.
    private bool Post(in AwsOutcome<TRequest, TResponse> done)
    {
        int inFlight = Interlocked.Decrement(ref _inFlight);
        long completed = Interlocked.Increment(ref _completed);
        long failed = done.Succeeded ? Interlocked.Read(ref _failed) : Interlocked.Increment(ref _failed);
        // Fail fast: stop before the failure is posted, so that no new call starts after it.
        if (!done.Succeeded && _failFast) Stop();
        if (_sink is not null) _sink.Place(done);
        else _outcomes.Writer.TryWrite(done);
        try
        {
            if (AwsTelemetry.FanOutCalls.Enabled)
                AwsTelemetry.FanOutCalls.Add(1, new KeyValuePair<string, object?>("outcome", done.Succeeded ? "success" : "failure"));
            _progress?.Report(new AwsFanOutProgress(completed, failed, inFlight));
        }
        catch (Exception e)
        {
            Debug.WriteLine($"SigV4Lite: a fan-out progress listener threw {e.GetType().Name}; the run goes on.");
        }
        return _sink is null; // an outcome in the channel holds its slot until the consumer takes it
    }

    // Called by the input, under its lock, after a request was read: while requests keep coming, add workers up to
    // MaxConcurrency, so that a short input never starts more workers than it has requests.
    private void OnRequestRead()
    {
        if (_started < _maxConcurrency && Volatile.Read(ref _stopped) == 0) StartWorker();
    }
}

/// <summary>The requests of a fan-out, read by one worker at a time.</summary>
internal abstract class FanOutInput<TRequest>
{
    private long _next;
    public bool Exhausted { get; protected set; }

    // A factory, checked now: each enumeration of a streaming fan-out is a new run, with an input of its own.
    public static Func<FanOutInput<TRequest>> From(IEnumerable<TRequest> requests)
    {
        ArgumentNullException.ThrowIfNull(requests);
        return () => new SyncInput(requests);
    }

    public static Func<FanOutInput<TRequest>> From(IAsyncEnumerable<TRequest> requests)
    {
        ArgumentNullException.ThrowIfNull(requests);
        return () => new AsyncInput(requests);
    }

    public abstract ValueTask<(bool HasRequest, long Index, TRequest Request)> NextAsync(Action onRead, CancellationToken cancellationToken);

    public abstract ValueTask DisposeAsync();

    protected long TakeIndex() => _next++;

    private sealed class SyncInput(IEnumerable<TRequest> requests) : FanOutInput<TRequest>
    {
        private readonly object _gate = new();
        private IEnumerator<TRequest>? _enumerator;

        public override ValueTask<(bool, long, TRequest)> NextAsync(Action onRead, CancellationToken cancellationToken)
        {
            lock (_gate)
            {
                if (Exhausted) return new((false, 0, default!));
                _enumerator ??= requests.GetEnumerator();
                if (!_enumerator.MoveNext())
                {
                    Exhausted = true;
                    return new((false, 0, default!));
                }
                var request = _enumerator.Current;
                onRead();
                return new((true, TakeIndex(), request));
            }
        }

        public override ValueTask DisposeAsync()
        {
            lock (_gate) _enumerator?.Dispose();
            return default;
        }
    }

    private sealed class AsyncInput(IAsyncEnumerable<TRequest> requests) : FanOutInput<TRequest>
    {
        private readonly SemaphoreSlim _gate = new(1, 1);
        private IAsyncEnumerator<TRequest>? _enumerator;

        public override async ValueTask<(bool, long, TRequest)> NextAsync(Action onRead, CancellationToken cancellationToken)
        {
            await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                if (Exhausted) return (false, 0, default!);
                _enumerator ??= requests.GetAsyncEnumerator(cancellationToken);
                if (!await _enumerator.MoveNextAsync().ConfigureAwait(false))
                {
                    Exhausted = true;
                    return (false, 0, default!);
                }
                var request = _enumerator.Current;
                onRead();
                return (true, TakeIndex(), request);
            }
            finally
            {
                _gate.Release();
            }
        }

        public override async ValueTask DisposeAsync()
        {
            if (_enumerator is not null) await _enumerator.DisposeAsync().ConfigureAwait(false);
            _gate.Dispose();
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Settings: the client's options, then the environment, then the profile, as the AWS SDKs resolve them.
// ---------------------------------------------------------------------------------------------------------------

internal sealed record AwsClientSettings(AwsConfigContext Context, TimeProvider Clock, string Region, Uri Endpoint, AwsRetryMode RetryMode, int MaxAttempts)
{
    public static AwsClientSettings Resolve(AwsService service, AwsClientOptions options)
    {
        if (options.MaxAttempts is < 1)
            throw new ArgumentOutOfRangeException(nameof(options), options.MaxAttempts, "MaxAttempts must be at least 1 (1 turns retries off).");
        if (options.RetryBaseDelay < TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(options), options.RetryBaseDelay, "RetryBaseDelay must not be negative.");
        if (options.Timeout is { } timeout) AttemptTimeouts.Validate(timeout, nameof(options));
        if (options.MaxResponseSize is < 1)
            throw new ArgumentOutOfRangeException(nameof(options), options.MaxResponseSize, "MaxResponseSize must be at least 1 byte.");
        if (options.RetryMode is { } mode && !Enum.IsDefined(mode))
            throw new ArgumentOutOfRangeException(nameof(options), mode, "RetryMode must be Standard or Adaptive.");

        // One clock for everything the client does, the default chain's refreshes included.
        var clock = options.Clock ?? options.Config?.Clock ?? TimeProvider.System;
        var config = options.Config is null ? new AwsConfigOptions { Clock = clock } : options.Config.WithClock(clock);
        var context = new AwsConfigContext(config);
        string region = AwsRegion.Resolve(options.Region, config);
        var endpoint = AwsEndpoint.Resolve(service.ServiceId, options.Endpoint, config)
            ?? AwsEndpoint.ForRegion(service.EndpointPrefix, region,
                options.UseFIPSEndpoint ?? Flag(context, "AWS_USE_FIPS_ENDPOINT", "use_fips_endpoint"),
                options.UseDualstackEndpoint ?? Flag(context, "AWS_USE_DUALSTACK_ENDPOINT", "use_dualstack_endpoint"));
        return new AwsClientSettings(context, clock, region, endpoint,
            options.RetryMode ?? ReadRetryMode(context),
            options.MaxAttempts ?? ReadMaxAttempts(context));
    }

    private static bool Flag(AwsConfigContext context, string variable, string key)
    {
        if (context.EnvBool(variable) is { } fromEnvironment) return fromEnvironment;
        return Profile(context)?.Get(key) is { } value
            && AwsEndpoint.ParseBool(value.Text, $"The {key} of profile '{context.ProfileName}' ({value.Where})", value);
    }

    private static AwsRetryMode ReadRetryMode(AwsConfigContext context)
    {
        var (text, where, at) = Setting(context, "AWS_RETRY_MODE", "retry_mode");
        return text?.ToLowerInvariant() switch
        {
            null or "standard" or "legacy" => AwsRetryMode.Standard,
            "adaptive" => AwsRetryMode.Adaptive,
            _ => throw new AwsConfigurationException($"{where} is '{text}'; write standard or adaptive.", at?.File, at?.Line, at is null ? null : context.ProfileName),
        };
    }

    private static int ReadMaxAttempts(AwsConfigContext context)
    {
        var (text, where, at) = Setting(context, "AWS_MAX_ATTEMPTS", "max_attempts");
        if (text is null) return 3;
        if (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int attempts) && attempts >= 1) return attempts;
        throw new AwsConfigurationException($"{where} is '{text}'; write a whole number of attempts, 1 or more (3 is the SDKs' default).", at?.File, at?.Line, at is null ? null : context.ProfileName);
    }

    // The environment variable, else the profile's key; with where it was found, for errors.
    private static (string? Text, string Where, IniValue? At) Setting(AwsConfigContext context, string variable, string key)
    {
        if (context.Env(variable) is { } value) return (value, $"The environment variable {variable}", null);
        if (Profile(context)?.Get(key) is { } setting) return (setting.Text, $"The {key} of profile '{context.ProfileName}' ({setting.Where})", setting);
        return (null, "", null);
    }

    private static IniSection? Profile(AwsConfigContext context) => context.Files.FindProfile(context.ProfileName, context.ProfileSelectedBy);
}

// The credentials chain's STS calls go through the pipeline when this file is compiled in (see Sts in AwsConfig.cs).
internal static partial class Sts
{
    static partial void SendThroughPipeline(AwsConfigContext context, Uri endpoint, string signingRegion, string action, string form,
        AwsCredentials? signer, string what, string? profileName, CancellationToken cancellationToken, ref Task<byte[]>? answer) =>
        answer = SendAsync(context, endpoint, signingRegion, action, form, signer, what, profileName, cancellationToken);

    private static async Task<byte[]> SendAsync(AwsConfigContext context, Uri endpoint, string signingRegion, string action, string form,
        AwsCredentials? signer, string what, string? profileName, CancellationToken cancellationToken)
    {
        var options = new AwsClientOptions
        {
            Region = signingRegion,
            Endpoint = endpoint,
            Credentials = signer,
            Clock = context.Clock,
            Timeout = Timeout,
            MaxResponseSize = 1024 * 1024,
            Config = context.Options,
        };
        using var sts = new AwsClient(AwsService.Sts, options, signed: signer is not null);
        var request = new AwsRequest(HttpMethod.Post)
        {
            ContentType = "application/x-www-form-urlencoded; charset=utf-8",
            Headers = [new("Accept", "text/xml")],
            Body = Encoding.UTF8.GetBytes(form),
            OperationName = action,
        };
        try
        {
            var response = await sts.SendAsync(request, cancellationToken).ConfigureAwait(false);
            return response.Body.ToArray();
        }
        catch (AwsException e) when (e is not AwsCredentialsException and not AwsConfigurationException)
        {
            throw new AwsCredentialsException($"{what} failed: {e.Message}", profileName, e);
        }
    }
}

// The chain's unsigned JSON calls (the SSO portal, SSO OIDC) go through the pipeline too (see AwsHttp in AwsConfig.cs):
// retried on throttling and transient errors; an error answer is handed back as status and body for the caller to judge.
internal static partial class AwsHttp
{
    static partial void SendThroughPipeline(AwsConfigContext context, string serviceId, HttpMethod method, Uri uri, KeyValuePair<string, string>[] headers,
        byte[]? json, TimeSpan timeout, string failure, string? profileName, CancellationToken cancellationToken, ref Task<(HttpStatusCode, byte[])>? answer) =>
        answer = SendAsync(context, serviceId, method, uri, headers, json, timeout, failure, profileName, cancellationToken);

    private static async Task<(HttpStatusCode, byte[])> SendAsync(AwsConfigContext context, string serviceId, HttpMethod method, Uri uri,
        KeyValuePair<string, string>[] headers, byte[]? json, TimeSpan timeout, string failure, string? profileName, CancellationToken cancellationToken)
    {
        var options = new AwsClientOptions
        {
            Region = "us-east-1", // unsigned: the region names no scope
            Endpoint = new Uri(uri.GetLeftPart(UriPartial.Authority)),
            Clock = context.Clock,
            Timeout = timeout,
            MaxResponseSize = 1024 * 1024,
            Config = context.Options,
        };
        using var client = new AwsClient(new AwsService(serviceId, "awsssoportal", AwsProtocol.RestJson1), options, signed: false);
        var request = new AwsRequest(method, uri.AbsolutePath, uri.Query.TrimStart('?'))
        {
            Headers = [new("Accept", "application/json"), .. headers],
            ContentType = json is null ? null : "application/json",
            Body = json,
        };
        try
        {
            var response = await client.SendAsync(request, cancellationToken).ConfigureAwait(false);
            return (response.StatusCode, response.Body.ToArray());
        }
        catch (AwsServiceException e)
        {
            return (e.StatusCode, e.Body.ToArray());
        }
        catch (AwsException e) when (e is AwsTimeoutException or AwsConnectionException or AwsResponseTooLargeException)
        {
            throw new AwsCredentialsException($"{failure}: {e.Message}", profileName, e);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Telemetry: one ActivitySource and one Meter, both named "SigV4Lite", in System.Diagnostics (no package). Spans and
// metrics follow the OpenTelemetry conventions for AWS SDK clients. Tags carry names, codes and ids only: never a
// payload, key, token or signature. With no listener each hook is a test of a flag.
// ---------------------------------------------------------------------------------------------------------------

/// <summary>The names OpenTelemetry users subscribe to: <c>.AddSource(AwsTelemetry.SourceName)</c> and
/// <c>.AddMeter(AwsTelemetry.MeterName)</c>.</summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
static class AwsTelemetry
{
    /// <summary>The <see cref="ActivitySource"/> name: a span per call, named <c>Service.Operation</c> (<c>DynamoDB.GetItem</c>).</summary>
    public const string SourceName = "SigV4Lite";

    /// <summary>The <see cref="System.Diagnostics.Metrics.Meter"/> name: <c>client.call.duration</c>, <c>client.call.attempts</c>,
    /// <c>client.call.errors</c>, <c>client.call.attempt_duration</c>, <c>client.call.resolve_identity_duration</c>,
    /// <c>sigv4lite.client.call.retries</c>, <c>sigv4lite.client.call.throttles</c>, <c>sigv4lite.client.calls_in_flight</c>,
    /// <c>sigv4lite.lambda.function_errors</c>, <c>sigv4lite.fanout.calls</c>.</summary>
    public const string MeterName = "SigV4Lite";

    internal static readonly ActivitySource Source = new(SourceName);
    internal static readonly System.Diagnostics.Metrics.Meter Meter = new(MeterName);

    internal static readonly System.Diagnostics.Metrics.Histogram<double> CallDuration =
        Meter.CreateHistogram<double>("client.call.duration", "s", "How long a call took, retries included.");
    internal static readonly System.Diagnostics.Metrics.Histogram<double> AttemptDuration =
        Meter.CreateHistogram<double>("client.call.attempt_duration", "s", "How long one attempt took, from signing to the answer read.");
    internal static readonly System.Diagnostics.Metrics.Histogram<double> ResolveIdentityDuration =
        Meter.CreateHistogram<double>("client.call.resolve_identity_duration", "s", "How long getting credentials took.");
    internal static readonly System.Diagnostics.Metrics.Counter<long> Attempts =
        Meter.CreateCounter<long>("client.call.attempts", "{attempt}", "Attempts made.");
    internal static readonly System.Diagnostics.Metrics.Counter<long> Errors =
        Meter.CreateCounter<long>("client.call.errors", "{error}", "Calls that failed, by error.type.");
    internal static readonly System.Diagnostics.Metrics.Counter<long> Retries =
        Meter.CreateCounter<long>("sigv4lite.client.call.retries", "{retry}", "Attempts made again after a failure.");
    internal static readonly System.Diagnostics.Metrics.Counter<long> Throttles =
        Meter.CreateCounter<long>("sigv4lite.client.call.throttles", "{attempt}", "Attempts the service throttled.");
    internal static readonly System.Diagnostics.Metrics.UpDownCounter<long> InFlight =
        Meter.CreateUpDownCounter<long>("sigv4lite.client.calls_in_flight", "{call}", "Calls started and not finished.");
    internal static readonly System.Diagnostics.Metrics.Counter<long> FunctionErrors =
        Meter.CreateCounter<long>("sigv4lite.lambda.function_errors", "{invocation}", "Lambda invocations whose function failed (HTTP 200 with X-Amz-Function-Error).");
    internal static readonly System.Diagnostics.Metrics.Counter<long> FanOutCalls =
        Meter.CreateCounter<long>("sigv4lite.fanout.calls", "{call}", "Calls of fan-outs completed, by outcome (success, failure).");

    // The tags every measure of a call carries.
    internal static TagList CallTags(AwsService service, string? operation)
    {
        var tags = new TagList { { "rpc.system", "aws-api" }, { "rpc.service", service.ServiceId } };
        if (operation is not null) tags.Add("rpc.method", operation);
        return tags;
    }
}

// One call's telemetry: a span and the measures, started only when someone listens.
internal struct CallTelemetry
{
    private Activity? _activity;
    private long _started;
    private bool _metrics;

    public static CallTelemetry Start(AwsService service, string? operation, string region, string? invokedFunction)
    {
        var telemetry = new CallTelemetry();
        if (AwsTelemetry.Source.HasListeners())
        {
            var activity = AwsTelemetry.Source.StartActivity(operation is null ? service.ServiceId : service.ServiceId + "." + operation, ActivityKind.Client);
            if (activity is { IsAllDataRequested: true })
            {
                activity.SetTag("rpc.system", "aws-api");
                activity.SetTag("rpc.service", service.ServiceId);
                if (operation is not null) activity.SetTag("rpc.method", operation);
                activity.SetTag("cloud.region", region);
                if (invokedFunction is not null)
                {
                    activity.SetTag("faas.invoked_name", invokedFunction);
                    activity.SetTag("faas.invoked_provider", "aws");
                    activity.SetTag("faas.invoked_region", region);
                }
            }
            telemetry._activity = activity;
        }
        telemetry._metrics = AwsTelemetry.CallDuration.Enabled || AwsTelemetry.Attempts.Enabled || AwsTelemetry.Errors.Enabled || AwsTelemetry.InFlight.Enabled
            || AwsTelemetry.AttemptDuration.Enabled || AwsTelemetry.Retries.Enabled || AwsTelemetry.Throttles.Enabled || AwsTelemetry.ResolveIdentityDuration.Enabled;
        if (telemetry._metrics)
        {
            telemetry._started = Stopwatch.GetTimestamp();
            AwsTelemetry.InFlight.Add(1, AwsTelemetry.CallTags(service, operation));
        }
        return telemetry;
    }

    public readonly bool Measuring => _metrics;

    public readonly void Identity(AwsService service, string? operation, long startedAt)
    {
        if (_metrics) AwsTelemetry.ResolveIdentityDuration.Record(Stopwatch.GetElapsedTime(startedAt).TotalSeconds, AwsTelemetry.CallTags(service, operation));
    }

    public readonly void Attempt(AwsService service, string? operation, long startedAt, bool throttled, bool retry)
    {
        if (!_metrics) return;
        var tags = AwsTelemetry.CallTags(service, operation);
        AwsTelemetry.Attempts.Add(1, tags);
        AwsTelemetry.AttemptDuration.Record(Stopwatch.GetElapsedTime(startedAt).TotalSeconds, tags);
        if (throttled) AwsTelemetry.Throttles.Add(1, tags);
        if (retry) AwsTelemetry.Retries.Add(1, tags);
    }

    public readonly void Succeeded(AwsService service, string? operation, AwsResponse response)
    {
        _activity?.SetTag("aws.request_id", response.RequestId);
        End(service, operation, null);
    }

    public readonly void Failed(AwsService service, string? operation, Exception error)
    {
        if (_activity is { } activity)
        {
            if (error is AwsServiceException service1)
            {
                activity.SetTag("aws.request_id", service1.RequestId);
                activity.SetTag("error.type", service1.ErrorCode);
                activity.SetTag("http.response.status_code", (int)service1.StatusCode);
            }
            else activity.SetTag("error.type", error.GetType().Name);
            // The exception's type only: its message can quote what the service said about the request.
            activity.SetStatus(ActivityStatusCode.Error, error.GetType().Name);
        }
        End(service, operation, error);
    }

    private readonly void End(AwsService service, string? operation, Exception? error)
    {
        _activity?.Dispose();
        if (!_metrics) return;
        var tags = AwsTelemetry.CallTags(service, operation);
        AwsTelemetry.InFlight.Add(-1, tags);
        AwsTelemetry.CallDuration.Record(Stopwatch.GetElapsedTime(_started).TotalSeconds, tags);
        if (error is not null)
        {
            tags.Add("error.type", error is AwsServiceException e ? e.ErrorCode : error.GetType().Name);
            AwsTelemetry.Errors.Add(1, tags);
        }
    }
}
