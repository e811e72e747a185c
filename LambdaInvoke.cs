// LambdaInvoke.cs: AWS Lambda Invoke over SigV4.cs, one call or a concurrent fan-out. BCL only.
//
//   using var lambda = new LambdaClient(new LambdaClientOptions { Region = "us-east-1" });
//   LambdaResponse answer = await lambda.InvokeAsync("my-function", """{"hello": 1}""");
//   IReadOnlyList<LambdaResponse> all = await lambda.InvokeAllAsync(requests, new LambdaFanOutOptions { MaxConcurrency = 64 });
//
// The file reads top-down: the options and values a caller sees, the exceptions, the client (one invocation with
// its retries), the fan-out engine, then endpoint rules and small helpers. Every type compiles as internal too.
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
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using System.Threading;
using System.Threading.Channels;
using System.Threading.Tasks;

namespace SigV4Lite;

/// <summary>How Lambda runs an invocation (<c>X-Amz-Invocation-Type</c>).</summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
enum LambdaInvocationType
{
    /// <summary>Synchronous: waits for the function and returns its answer (HTTP 200).</summary>
    RequestResponse,
    /// <summary>Asynchronous: queues the event and returns at once (HTTP 202, empty payload).</summary>
    Event,
    /// <summary>Checks the parameters and permissions without running the function (HTTP 204).</summary>
    DryRun,
}

/// <summary>Settings of a <see cref="LambdaClient"/>. Every property is optional.</summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
sealed class LambdaClientOptions
{
    /// <summary>The region, such as <c>us-east-1</c>. Null resolves it as the AWS SDKs do (<see cref="AwsRegion.Resolve"/>):
    /// <c>AWS_REGION</c>, then <c>AWS_DEFAULT_REGION</c>, then the <c>region</c> of the profile in the shared config
    /// files; the client cannot be made without one.</summary>
    public string? Region { get; init; }

    /// <summary>A custom endpoint (an emulator, a VPC endpoint): an absolute http or https URL without a query; its path,
    /// if any, prefixes the API's. Null resolves it as the AWS SDKs do (<see cref="AwsEndpoint.Resolve"/>):
    /// <c>AWS_ENDPOINT_URL_LAMBDA</c>, then <c>AWS_ENDPOINT_URL</c>, then the profile's <c>services</c> section and
    /// <c>endpoint_url</c> (all ignored when <c>AWS_IGNORE_CONFIGURED_ENDPOINT_URLS</c> or the profile's
    /// <c>ignore_configured_endpoint_urls</c> is true); when none is set, the region's public endpoint.</summary>
    public Uri? Endpoint { get; init; }

    /// <summary>Use the FIPS endpoint (<c>lambda-fips.{region}...</c>); ignored with a custom endpoint.</summary>
    public bool UseFips { get; init; }

    /// <summary>Use the dual-stack (IPv4 and IPv6) endpoint; ignored with a custom endpoint.</summary>
    public bool UseDualStack { get; init; }

    /// <summary>Where credentials come from. Null uses the AWS SDKs' default chain (<see cref="AwsCredentialsChain.CreateDefault"/>),
    /// first read by the first call: environment variables (<c>AWS_ACCESS_KEY_ID</c>, <c>AWS_SECRET_ACCESS_KEY</c>,
    /// <c>AWS_SESSION_TOKEN</c>), a web identity token file (an STS call), the profile in the shared config files
    /// (static keys, an assumed role, <c>credential_process</c>), container credentials, then EC2 instance metadata.
    /// When nothing before it is configured, that last link is a network call to the instance metadata service
    /// (169.254.169.254, which fails within seconds off EC2; <c>AWS_EC2_METADATA_DISABLED=true</c> turns it off).</summary>
    public IAwsCredentialsProvider? Credentials { get; init; }

    /// <summary>Where the region, endpoint and credentials left null are looked for: the environment variables, the
    /// profile, the home directory of the shared config files, the clock of credential refreshes. Null for the real
    /// ones (the process environment, <c>AWS_PROFILE</c> or <c>default</c>, the user's home directory).</summary>
    public AwsConfigOptions? Config { get; init; }

    /// <summary>An HttpClient to send with (from IHttpClientFactory, say). Its own <see cref="HttpClient.Timeout"/>
    /// still applies; set it to <see cref="Timeout.InfiniteTimeSpan"/> to rely on <see cref="Timeout"/> only.
    /// Null uses one pooled HttpClient shared by every client in the process (it follows no redirect).</summary>
    public HttpClient? HttpClient { get; init; }

    /// <summary>A handler to send with, when <see cref="HttpClient"/> is null. The client does not dispose it.</summary>
    public HttpMessageHandler? HttpHandler { get; init; }

    /// <summary>Attempts per invocation, the first included: 3 by default (the SDKs' standard mode); 1 turns retries off.</summary>
    public int MaxAttempts { get; init; } = 3;

    /// <summary>The base of the exponential backoff: the delay before retry i is random below min(base * 2^(i-1), 20 s),
    /// in whole milliseconds. 1 second by default.</summary>
    public TimeSpan RetryBaseDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>How long one attempt may take (sending, the function's run, reading the answer) before it fails with a
    /// <see cref="LambdaTimeoutException"/>. 16 minutes by default: longer than the longest run Lambda allows (15 minutes).
    /// <see cref="Timeout.InfiniteTimeSpan"/> means no limit, and so does anything over 49 days (the longest a timer takes).</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(16);

    /// <summary>The clock for signing, retry delays and attempt timeouts; <see cref="TimeProvider.System"/> by default.
    /// Retry delays are waited on its timers (<see cref="Task.Delay(TimeSpan, TimeProvider, CancellationToken)"/>), so a
    /// test clock decides when they end.</summary>
    public TimeProvider Clock { get; init; } = TimeProvider.System;
}

/// <summary>Settings of one invocation. An instance can be shared by any number of calls.</summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
sealed class LambdaInvokeOptions
{
    internal static readonly LambdaInvokeOptions Default = new();

    /// <summary>A version or alias (<c>$LATEST</c>, <c>7</c>, <c>live</c>), sent as <c>?Qualifier=</c>; null for none.
    /// A qualifier may also end the function name (<c>my-function:live</c>).</summary>
    public string? Qualifier { get; init; }

    /// <summary>Synchronous (the default), asynchronous (<see cref="LambdaInvocationType.Event"/>) or a dry run.</summary>
    public LambdaInvocationType InvocationType { get; init; }

    /// <summary>Asks for the last 4 KB of the function's log, returned decoded in <see cref="LambdaResponse.Log"/>.
    /// Synchronous invocations only.</summary>
    public bool IncludeLogTail { get; init; }

    /// <summary>JSON passed to the function's context object (sent base64-encoded in <c>X-Amz-Client-Context</c>,
    /// at most 3,583 bytes once encoded). Synchronous invocations only.</summary>
    public string? ClientContext { get; init; }

    /// <summary>Whether a function error (HTTP 200 with <c>X-Amz-Function-Error</c>) throws a
    /// <see cref="LambdaFunctionException"/> (the default) or is returned as a response whose
    /// <see cref="LambdaResponse.FunctionError"/> is set and whose payload is the error object.</summary>
    public bool ThrowOnFunctionError { get; init; } = true;

    /// <summary>Overrides <see cref="LambdaClientOptions.Timeout"/> for these calls: the limit of one attempt.
    /// <see cref="Timeout.InfiniteTimeSpan"/>, or anything over 49 days, means no limit.</summary>
    public TimeSpan? Timeout { get; init; }

    // Encoded once per options instance: a fan-out sharing one instance pays for it once.
    private string? _encodedClientContext;

    internal string? GetEncodedClientContext()
    {
        if (ClientContext is null) return null;
        return _encodedClientContext ??= LambdaClient.EncodeClientContext(ClientContext);
    }
}

/// <summary>The answer to one invocation.</summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
sealed class LambdaResponse
{
    internal LambdaResponse(string functionName, int statusCode, byte[] payload, string? executedVersion, string? requestId, string? log, string? functionError)
    {
        FunctionName = functionName;
        StatusCode = statusCode;
        _payload = payload;
        ExecutedVersion = executedVersion;
        RequestId = requestId;
        Log = log;
        FunctionError = functionError;
    }

    private readonly byte[] _payload;

    /// <summary>The function name as the caller gave it.</summary>
    public string FunctionName { get; }

    /// <summary>The HTTP status: 200 (RequestResponse), 202 (Event) or 204 (DryRun).</summary>
    public int StatusCode { get; }

    /// <summary>The function's answer as sent (usually JSON); empty for Event and DryRun.</summary>
    public ReadOnlyMemory<byte> Payload => _payload;

    /// <summary>The version that ran (<c>X-Amz-Executed-Version</c>), such as <c>$LATEST</c>; null when not sent.</summary>
    public string? ExecutedVersion { get; }

    /// <summary>Lambda's request id (<c>x-amzn-RequestId</c>).</summary>
    public string? RequestId { get; }

    /// <summary>The end of the function's log, decoded, when <see cref="LambdaInvokeOptions.IncludeLogTail"/> asked for it.</summary>
    public string? Log { get; }

    /// <summary><c>Handled</c> or <c>Unhandled</c> when the function failed and <see cref="LambdaInvokeOptions.ThrowOnFunctionError"/>
    /// was off (the payload is then the error object); null when it succeeded.</summary>
    public string? FunctionError { get; }

    /// <summary>The payload as UTF-8 text.</summary>
    public string GetPayloadString() => Encoding.UTF8.GetString(_payload);

    /// <summary>Deserializes the JSON payload with source-generated metadata (AOT and trimming safe).</summary>
    /// <exception cref="JsonException">The payload is not JSON of that shape.</exception>
    public T? DeserializePayload<T>(JsonTypeInfo<T> typeInfo)
    {
        ArgumentNullException.ThrowIfNull(typeInfo);
        return JsonSerializer.Deserialize(_payload, typeInfo);
    }

    /// <summary>Shows the function, status, request id and payload size.</summary>
    public override string ToString() =>
        $"LambdaResponse {{ FunctionName = {FunctionName}, StatusCode = {StatusCode}, RequestId = {RequestId}, ExecutedVersion = {ExecutedVersion}, Payload = {_payload.Length} bytes{(FunctionError is null ? "" : ", FunctionError = " + FunctionError)} }}";
}

/// <summary>One request of a fan-out: the function, its payload and, optionally, its own settings.</summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
readonly struct LambdaRequest
{
    /// <summary>Creates a request with a payload of bytes (usually UTF-8 JSON).</summary>
    public LambdaRequest(string functionName, ReadOnlyMemory<byte> payload, LambdaInvokeOptions? options = null)
    {
        FunctionName = functionName;
        Payload = payload;
        Options = options;
    }

    /// <summary>Creates a request with a text payload (usually JSON), sent as UTF-8.</summary>
    public LambdaRequest(string functionName, string payload, LambdaInvokeOptions? options = null)
        : this(functionName, Encoding.UTF8.GetBytes(payload ?? throw new ArgumentNullException(nameof(payload))), options) { }

    /// <summary>The function: a name, <c>name:qualifier</c>, a full ARN or a partial ARN.</summary>
    public string FunctionName { get; }

    /// <summary>The payload, sent as is.</summary>
    public ReadOnlyMemory<byte> Payload { get; }

    /// <summary>This request's settings; null for the defaults.</summary>
    public LambdaInvokeOptions? Options { get; }

    /// <summary>Shows the function and payload size.</summary>
    public override string ToString() => $"LambdaRequest {{ FunctionName = {FunctionName}, Payload = {Payload.Length} bytes }}";
}

/// <summary>Settings of a fan-out.</summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
sealed class LambdaFanOutOptions
{
    internal static readonly LambdaFanOutOptions Default = new();

    /// <summary>The most invocations in flight at once, never exceeded; also the most requests read ahead of the
    /// results consumed. 16 by default.</summary>
    public int MaxConcurrency { get; init; } = 16;

    /// <summary>Told after each invocation completes (from the thread that completed it), and once at the end.</summary>
    public IProgress<LambdaFanOutProgress>? Progress { get; init; }
}

/// <summary>Where a fan-out stands.</summary>
/// <param name="Completed">Invocations finished, failed ones included.</param>
/// <param name="Failed">Invocations that failed.</param>
/// <param name="InFlight">Invocations started and not yet finished.</param>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
readonly record struct LambdaFanOutProgress(long Completed, long Failed, int InFlight);

/// <summary>The outcome of one request of a fan-out: its response, or the exception it failed with.</summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
readonly struct LambdaOutcome
{
    internal LambdaOutcome(long index, string functionName, LambdaResponse? response, Exception? error, TimeSpan elapsed)
    {
        Index = index;
        FunctionName = functionName;
        Response = response;
        Error = error;
        Elapsed = elapsed;
    }

    /// <summary>The request's position in the input, from 0.</summary>
    public long Index { get; }

    /// <summary>The function name as given in the request.</summary>
    public string FunctionName { get; }

    /// <summary>The response; null when the invocation failed.</summary>
    public LambdaResponse? Response { get; }

    /// <summary>Why it failed (<see cref="LambdaFunctionException"/>, <see cref="LambdaServiceException"/>,
    /// <see cref="LambdaTimeoutException"/>, <see cref="HttpRequestException"/>, ...); null when it succeeded.</summary>
    public Exception? Error { get; }

    /// <summary>How long the invocation took, retries included.</summary>
    public TimeSpan Elapsed { get; }

    /// <summary>Whether the invocation succeeded.</summary>
    [MemberNotNullWhen(true, nameof(Response))]
    [MemberNotNullWhen(false, nameof(Error))]
    public bool Succeeded => Error is null;

    /// <summary>Returns the response, or throws the exception the invocation failed with.</summary>
    public LambdaResponse GetResponseOrThrow()
    {
        if (Error is not null) ExceptionDispatchInfo.Throw(Error);
        return Response!;
    }

    /// <summary>Shows the index, function and result.</summary>
    public override string ToString() =>
        $"LambdaOutcome {{ Index = {Index}, FunctionName = {FunctionName}, {(Error is null ? "Succeeded" : "Failed: " + Error.GetType().Name)} }}";
}

/// <summary>
/// Lambda answered with an error of its own (HTTP 4xx or 5xx): the function did not run, or its result is unknown.
/// <see cref="ErrorType"/> names it as AWS does (<c>ResourceNotFoundException</c>, <c>TooManyRequestsException</c>, ...).
/// </summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
sealed class LambdaServiceException : Exception
{
    /// <summary>Creates the exception.</summary>
    public LambdaServiceException(string functionName, string errorType, string errorMessage, int statusCode, string? requestId,
        string? reason = null, TimeSpan? retryAfter = null, int attempts = 1)
        : base(FormatMessage(functionName, errorType, errorMessage, statusCode, requestId, reason, attempts))
    {
        FunctionName = functionName;
        ErrorType = errorType;
        ErrorMessage = errorMessage;
        StatusCode = statusCode;
        RequestId = requestId;
        Reason = reason;
        RetryAfter = retryAfter;
        Attempts = attempts;
    }

    /// <summary>The function name as the caller gave it.</summary>
    public string FunctionName { get; }

    /// <summary>The error type, such as <c>ResourceNotFoundException</c> (without the <c>:suffix</c> or <c>prefix#</c> AWS may add).</summary>
    public string ErrorType { get; }

    /// <summary>The service's message.</summary>
    public string ErrorMessage { get; }

    /// <summary>The HTTP status.</summary>
    public int StatusCode { get; }

    /// <summary>Lambda's request id (<c>x-amzn-RequestId</c>), for AWS support.</summary>
    public string? RequestId { get; }

    /// <summary>Why a request was throttled (429), such as <c>ReservedFunctionConcurrentInvocationLimitExceeded</c>; else null.</summary>
    public string? Reason { get; }

    /// <summary>The <c>Retry-After</c> the service asked for, if any.</summary>
    public TimeSpan? RetryAfter { get; }

    /// <summary>How many attempts were made, this one included.</summary>
    public int Attempts { get; }

    /// <summary>Whether this is throttling (429 or a throttling error type): the function did not run; a later retry is safe.</summary>
    public bool IsThrottling => StatusCode == 429 || LambdaClient.IsThrottlingType(ErrorType);

    internal DateTimeOffset? ServerDate { get; init; }

    private static string FormatMessage(string functionName, string errorType, string errorMessage, int statusCode, string? requestId, string? reason, int attempts) =>
        $"Lambda answered {statusCode} {errorType} for function '{functionName}': {errorMessage}" +
        (reason is null ? "" : $" (reason: {reason})") +
        (requestId is null ? "" : $" (request id {requestId})") +
        (attempts > 1 ? $" after {attempts} attempts" : "");
}

/// <summary>
/// The function ran and failed: Lambda answered HTTP 200 with <c>X-Amz-Function-Error</c>. <see cref="ErrorType"/>
/// and <see cref="ErrorMessage"/> come from the function's error object. Never retried: the function did run.
/// </summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
sealed class LambdaFunctionException : Exception
{
    /// <summary>Creates the exception from the response that carried the function error.</summary>
    public LambdaFunctionException(LambdaResponse response)
        : this(response ?? throw new ArgumentNullException(nameof(response)), ReadErrorObject(response.Payload.Span)) { }

    private LambdaFunctionException(LambdaResponse response, (string Type, string Message) error)
        : base($"Lambda function '{response.FunctionName}' failed ({response.FunctionError ?? "Unhandled"}): {error.Type}: {error.Message}" +
               (response.RequestId is null ? "" : $" (request id {response.RequestId})"))
    {
        Response = response;
        ErrorType = error.Type;
        ErrorMessage = error.Message;
    }

    /// <summary>The response: its payload is the error object, with the log if it was asked for.</summary>
    public LambdaResponse Response { get; }

    /// <summary>The function name as the caller gave it.</summary>
    public string FunctionName => Response.FunctionName;

    /// <summary><c>Handled</c> (the function returned an error) or <c>Unhandled</c> (it threw, timed out or crashed).</summary>
    public string FunctionError => Response.FunctionError ?? "Unhandled";

    /// <summary>The function's <c>errorType</c>, such as <c>ValueError</c> or <c>Runtime.ExitError</c>.</summary>
    public string ErrorType { get; }

    /// <summary>The function's <c>errorMessage</c>.</summary>
    public string ErrorMessage { get; }

    /// <summary>Lambda's request id.</summary>
    public string? RequestId => Response.RequestId;

    // The error object is {"errorMessage": ..., "errorType": ..., "stackTrace": [...]}; anything else is shown as text.
    private static (string Type, string Message) ReadErrorObject(ReadOnlySpan<byte> payload)
    {
        var values = Json.TryReadObject(payload, out _);
        return (values?.GetValueOrDefault("errorType") ?? "UnknownError", values?.GetValueOrDefault("errorMessage") ?? Json.Clip(payload));
    }
}

/// <summary>An attempt took longer than its timeout (<see cref="LambdaInvokeOptions.Timeout"/>,
/// <see cref="LambdaClientOptions.Timeout"/> or the HttpClient's own). A cancellation by the caller is an
/// <see cref="OperationCanceledException"/> instead.</summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
sealed class LambdaTimeoutException : TimeoutException
{
    /// <summary>Creates the exception.</summary>
    public LambdaTimeoutException(string functionName, TimeSpan timeout, int attempts, Exception? innerException = null)
        : base($"Invoking Lambda function '{functionName}' timed out: an attempt took longer than {timeout} " +
               $"(set LambdaInvokeOptions.Timeout or LambdaClientOptions.Timeout for longer runs){(attempts > 1 ? $"; {attempts} attempts made" : "")}.", innerException)
    {
        FunctionName = functionName;
        Timeout = timeout;
        Attempts = attempts;
    }

    /// <summary>The function name as the caller gave it.</summary>
    public string FunctionName { get; }

    /// <summary>The timeout of one attempt.</summary>
    public TimeSpan Timeout { get; }

    /// <summary>How many attempts were made.</summary>
    public int Attempts { get; }
}

/// <summary>
/// Invokes AWS Lambda functions: one at a time (<see cref="InvokeAsync(string, ReadOnlyMemory{byte}, LambdaInvokeOptions?, CancellationToken)"/>)
/// or many concurrently (<see cref="InvokeAllAsync(IEnumerable{LambdaRequest}, LambdaFanOutOptions?, CancellationToken)"/>,
/// <see cref="InvokeAllSettledAsync(IEnumerable{LambdaRequest}, LambdaFanOutOptions?, CancellationToken)"/>,
/// <see cref="InvokeEachAsync(IEnumerable{LambdaRequest}, LambdaFanOutOptions?, CancellationToken)"/>).
/// Every attempt is signed afresh; throttling and transient failures are retried as the AWS SDKs' standard mode
/// does. Thread-safe: make one and share it.
/// </summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
sealed class LambdaClient : IDisposable
{
    private const int MaxClientContextLength = 3583;
    private const int RetryQuotaCapacity = 500, RetryCost = 5, TimeoutRetryCost = 10;
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan ClockSkewThreshold = TimeSpan.FromMinutes(5);
    // The longest delay a timer takes (CancelAfter throws beyond it): about 49.7 days. A longer timeout means no limit.
    private static readonly TimeSpan MaxTimerDelay = TimeSpan.FromMilliseconds(uint.MaxValue - 1);

    private readonly HttpClient _http;
    private readonly bool _ownsHttp;
    private readonly IAwsCredentialsProvider _credentials;
    private readonly SigV4Options _signing;
    private readonly TimeProvider _clock;
    private readonly int _maxAttempts;
    private readonly TimeSpan _retryBaseDelay;
    private readonly TimeSpan _timeout;
    private readonly string _origin;      // scheme://host[:port]
    private readonly string _pathPrefix;  // [base path]/2015-03-31/functions/
    private readonly string _host;        // the Host header HttpClient sends
    private readonly KeyValuePair<string, string>[] _hostOnly; // the signed headers of a plain synchronous invocation
    private int _retryTokens = RetryQuotaCapacity;
    private long _clockOffsetTicks;       // server time minus local time, learnt from a clock-skew error

    /// <summary>Creates a client. The region and endpoint are resolved now (reading the environment and the shared config
    /// files when they are not given); nothing is sent and no credentials are read until the first call.</summary>
    /// <param name="options">The settings; null for the defaults.</param>
    /// <exception cref="ArgumentException">A setting given in code is out of range or malformed (the region, the endpoint,
    /// MaxAttempts, RetryBaseDelay, Timeout), or dual-stack was asked for in a partition without it.</exception>
    /// <exception cref="AwsConfigurationException">No region is set anywhere, or the configuration holds a malformed one
    /// (<c>AWS_REGION</c>, a profile's <c>region</c>), a malformed endpoint (<c>AWS_ENDPOINT_URL_LAMBDA</c>,
    /// <c>AWS_ENDPOINT_URL</c>, a profile's <c>endpoint_url</c>), a malformed config file, or names a profile that does
    /// not exist. The message says which.</exception>
    public LambdaClient(LambdaClientOptions? options = null)
    {
        options ??= new LambdaClientOptions();
        if (options.MaxAttempts < 1)
            throw new ArgumentException($"MaxAttempts must be at least 1 (1 turns retries off); it was {options.MaxAttempts}.", nameof(options));
        if (options.RetryBaseDelay < TimeSpan.Zero)
            throw new ArgumentException($"RetryBaseDelay must not be negative; it was {options.RetryBaseDelay}.", nameof(options));
        ValidateTimeout(options.Timeout, nameof(options));

        // The defaults resolve as the AWS SDKs do (AwsConfig.cs): code, then environment, then the shared config files.
        string region = AwsRegion.Resolve(options.Region, options.Config);
        Region = region;
        Endpoint = AwsEndpoint.Resolve("Lambda", options.Endpoint, options.Config) ?? AwsEndpoint.ForRegion("lambda", region, options.UseFips, options.UseDualStack);

        _origin = Endpoint.GetLeftPart(UriPartial.Authority);
        _pathPrefix = Endpoint.AbsolutePath.TrimEnd('/') + "/2015-03-31/functions/";
        _host = SigV4.HostHeader(Endpoint);
        _hostOnly = [new("Host", _host)];
        _credentials = options.Credentials ?? AwsCredentialsChain.CreateDefault(options.Config);
        _clock = options.Clock ?? TimeProvider.System;
        _signing = new SigV4Options("lambda", region);
        _maxAttempts = options.MaxAttempts;
        _retryBaseDelay = options.RetryBaseDelay;
        _timeout = options.Timeout;
        if (options.HttpClient is not null) _http = options.HttpClient;
        else if (options.HttpHandler is not null) { _http = new HttpClient(options.HttpHandler, disposeHandler: false) { Timeout = System.Threading.Timeout.InfiniteTimeSpan }; _ownsHttp = true; }
        else _http = AwsHttp.Proxied;
    }

    /// <summary>The region requests are signed for.</summary>
    public string Region { get; }

    /// <summary>The endpoint requests go to.</summary>
    public Uri Endpoint { get; }

    /// <summary>Server time minus local time, as learnt from a clock-skew error; zero until then.</summary>
    internal TimeSpan ClockOffset => TimeSpan.FromTicks(Interlocked.Read(ref _clockOffsetTicks));

    /// <summary>Disposes the HttpClient the client made over <see cref="LambdaClientOptions.HttpHandler"/>; nothing else.</summary>
    public void Dispose()
    {
        if (_ownsHttp) _http.Dispose();
    }

    // ---------------------------------------------------------------------------------------------------------
    // One invocation.
    // ---------------------------------------------------------------------------------------------------------

    /// <summary>Invokes a function with a payload of bytes (usually UTF-8 JSON).</summary>
    /// <param name="functionName">A name (<c>my-function</c>), <c>name:qualifier</c>, a full ARN or a partial ARN (<c>123456789012:function:my-function</c>).</param>
    /// <param name="payload">The event, sent as is.</param>
    /// <param name="options">Qualifier, invocation type, log, client context, function-error handling, timeout; null for the defaults.</param>
    /// <param name="cancellationToken">Cancels the call (an <see cref="OperationCanceledException"/>, never retried).</param>
    /// <returns>The response.</returns>
    /// <exception cref="LambdaFunctionException">The function ran and failed (unless <see cref="LambdaInvokeOptions.ThrowOnFunctionError"/> is off).</exception>
    /// <exception cref="LambdaServiceException">Lambda answered with an error, after any retries.</exception>
    /// <exception cref="LambdaTimeoutException">The last attempt timed out.</exception>
    /// <exception cref="HttpRequestException">The connection failed on every attempt.</exception>
    /// <exception cref="ArgumentException">The function name, qualifier or client context is malformed; nothing was sent.</exception>
    public Task<LambdaResponse> InvokeAsync(string functionName, ReadOnlyMemory<byte> payload, LambdaInvokeOptions? options = null, CancellationToken cancellationToken = default) =>
        InvokeCoreAsync(functionName, payload, options ?? LambdaInvokeOptions.Default, cancellationToken);

    /// <summary>Invokes a function with a text payload (usually JSON), sent as UTF-8.</summary>
    /// <inheritdoc cref="InvokeAsync(string, ReadOnlyMemory{byte}, LambdaInvokeOptions?, CancellationToken)"/>
    public Task<LambdaResponse> InvokeAsync(string functionName, string payload, LambdaInvokeOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(payload);
        return InvokeCoreAsync(functionName, Encoding.UTF8.GetBytes(payload), options ?? LambdaInvokeOptions.Default, cancellationToken);
    }

    /// <summary>Invokes a function with a value serialized as JSON by source-generated metadata (AOT and trimming safe).</summary>
    /// <param name="functionName">A name, <c>name:qualifier</c>, a full ARN or a partial ARN.</param>
    /// <param name="payload">The value to send.</param>
    /// <param name="payloadTypeInfo">Its metadata, such as <c>MyJsonContext.Default.MyEvent</c>.</param>
    /// <param name="options">Settings for this call; null for the defaults.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <inheritdoc cref="InvokeAsync(string, ReadOnlyMemory{byte}, LambdaInvokeOptions?, CancellationToken)"/>
    public Task<LambdaResponse> InvokeAsync<TPayload>(string functionName, TPayload payload, JsonTypeInfo<TPayload> payloadTypeInfo, LambdaInvokeOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(payloadTypeInfo);
        return InvokeCoreAsync(functionName, JsonSerializer.SerializeToUtf8Bytes(payload, payloadTypeInfo), options ?? LambdaInvokeOptions.Default, cancellationToken);
    }

    // One invocation: attempts, each signed afresh, until one succeeds, fails for good, or the retries run out.
    // One method, so that a call costs one state machine.
    private async Task<LambdaResponse> InvokeCoreAsync(string functionName, ReadOnlyMemory<byte> payload, LambdaInvokeOptions options, CancellationToken cancellationToken)
    {
        var target = PrepareTarget(functionName, options);
        string payloadHash = SigV4.HashPayload(payload.Span);
        var timeout = options.Timeout ?? _timeout;
        int attempt = 0, retryTokensTaken = 0;
        bool skewCorrected = false;
        while (true)
        {
            attempt++;
            cancellationToken.ThrowIfCancellationRequested();
            var credentials = await _credentials.GetCredentialsAsync(cancellationToken).ConfigureAwait(false);
            // The attempt's timeout has a token source of its own, so that its expiry is told apart from the caller's cancellation.
            var attemptSource = StartAttemptTimeout(timeout, cancellationToken, out var callerRegistration);
            var token = attemptSource?.Token ?? cancellationToken;
            // The offset this attempt is signed with: a skew error is judged against it, not against an offset that
            // a concurrent call may have learnt since.
            var signedOffset = ClockOffset;
            HttpRequestMessage? request = null;
            HttpResponseMessage? response = null;
            Exception failure;
            int cost = RetryCost;
            try
            {
                request = BuildSignedRequest(payload, payloadHash, options, target, credentials, _clock.GetUtcNow() + signedOffset);
                response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, token).ConfigureAwait(false);

                // The body goes into an array of exactly its size: the one copy a response's payload ever makes.
                long? length = response.Content.Headers.ContentLength;
                byte[] body;
                if (length == 0) body = Array.Empty<byte>();
                else if (length is { } known && known <= Array.MaxLength)
                {
                    body = new byte[known];
                    using var stream = await response.Content.ReadAsStreamAsync(token).ConfigureAwait(false);
                    await stream.ReadExactlyAsync(body, token).ConfigureAwait(false);
                }
                else body = await ReadUnknownLengthBodyAsync(response.Content, token).ConfigureAwait(false);

                int status = (int)response.StatusCode;
                string? requestId = HeaderValue(response.Headers, "x-amzn-RequestId");
                if (status is >= 200 and <= 299)
                {
                    ReturnRetryTokens(retryTokensTaken == 0 ? 1 : retryTokensTaken);
                    var result = new LambdaResponse(functionName, status, body,
                        HeaderValue(response.Headers, "X-Amz-Executed-Version"),
                        requestId,
                        DecodeLog(HeaderValue(response.Headers, "X-Amz-Log-Result")),
                        HeaderValue(response.Headers, "X-Amz-Function-Error"));
                    // The function ran: its error is the caller's to see, never a reason to run it again.
                    if (result.FunctionError is not null && options.ThrowOnFunctionError)
                        throw new LambdaFunctionException(result);
                    return result;
                }

                var error = ReadServiceError(functionName, response, body, requestId, credentials, attempt);
                if (!skewCorrected && TryCorrectClockSkew(error, signedOffset))
                {
                    // The signature was judged by a clock that differs from the one it was signed with: sign again
                    // with the corrected time, once per call.
                    skewCorrected = true;
                    attempt--;
                    continue;
                }
                if (!error.IsThrottling && !IsTransientStatus(error.StatusCode)) throw error;
                failure = error;
            }
            catch (Exception e) when (e is not LambdaServiceException and not LambdaFunctionException && !cancellationToken.IsCancellationRequested
                && (attemptSource?.IsCancellationRequested == true || e is OperationCanceledException))
            {
                // Our timeout fired, or the HttpClient's own Timeout did (an OperationCanceledException the caller did not ask for).
                failure = new LambdaTimeoutException(functionName, attemptSource?.IsCancellationRequested == true ? timeout : _http.Timeout, attempt, e);
                cost = TimeoutRetryCost;
            }
            catch (Exception e) when ((e is HttpRequestException || e is IOException) && !cancellationToken.IsCancellationRequested)
            {
                failure = e; // the connection failed or the answer was cut short
            }
            finally
            {
                response?.Dispose();
                request?.Dispose();
                EndAttemptTimeout(attemptSource, callerRegistration);
            }

            if (attempt >= _maxAttempts || !TryTakeRetryTokens(cost))
                ExceptionDispatchInfo.Throw(failure);
            retryTokensTaken += cost;
            await DelayAsync(Backoff(attempt), cancellationToken).ConfigureAwait(false);
        }
    }

    // Timeout sources are reset after an attempt that did not time out and used again: a call then costs no new
    // source or timer. A few hundred cover any concurrency a client sees.
    private readonly ConcurrentQueue<CancellationTokenSource> _spareTimeoutSources = new();
    private int _spareTimeoutSourceCount;
    private const int MaxSpareTimeoutSources = 512;

    private CancellationTokenSource? StartAttemptTimeout(TimeSpan timeout, CancellationToken cancellationToken, out CancellationTokenRegistration callerRegistration)
    {
        callerRegistration = default;
        if (timeout == System.Threading.Timeout.InfiniteTimeSpan || timeout > MaxTimerDelay) return null;
        CancellationTokenSource source;
        if (ReferenceEquals(_clock, TimeProvider.System))
        {
            if (_spareTimeoutSources.TryDequeue(out var spare)) Interlocked.Decrement(ref _spareTimeoutSourceCount);
            source = spare ?? new CancellationTokenSource();
            source.CancelAfter(timeout);
        }
        else source = new CancellationTokenSource(timeout, _clock);
        if (cancellationToken.CanBeCanceled)
            callerRegistration = cancellationToken.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), source);
        return source;
    }

    private void EndAttemptTimeout(CancellationTokenSource? source, CancellationTokenRegistration callerRegistration)
    {
        callerRegistration.Dispose(); // waits for a cancellation callback in progress, so none comes after the reset
        if (source is null) return;
        if (ReferenceEquals(_clock, TimeProvider.System) && source.TryReset())
        {
            if (Interlocked.Increment(ref _spareTimeoutSourceCount) <= MaxSpareTimeoutSources)
            {
                _spareTimeoutSources.Enqueue(source);
                return;
            }
            Interlocked.Decrement(ref _spareTimeoutSourceCount);
        }
        source.Dispose();
    }

    // What stays the same across attempts: the URI and the path as signed, and the validated headers.
    private readonly struct Target
    {
        public required Uri Uri { get; init; }
        public required string Path { get; init; }
        public required string Query { get; init; }
        public required string? ClientContext { get; init; }
    }

    private Target PrepareTarget(string functionName, LambdaInvokeOptions options)
    {
        if (string.IsNullOrEmpty(functionName))
            throw new ArgumentException("The function name is empty; give a name (my-function), name:qualifier, a full ARN (arn:aws:lambda:us-east-1:123456789012:function:my-function) or a partial ARN (123456789012:function:my-function).", nameof(functionName));
        if (options.Qualifier is { Length: 0 })
            throw new ArgumentException("The qualifier is empty; give a version or alias such as $LATEST, 7 or live, or leave it null.", nameof(options));
        if (options.InvocationType == LambdaInvocationType.Event)
        {
            if (options.IncludeLogTail)
                throw new ArgumentException("IncludeLogTail applies to synchronous invocations only: Lambda returns no log for an Event invocation. Turn it off or use RequestResponse.", nameof(options));
            if (options.ClientContext is not null)
                throw new ArgumentException("ClientContext applies to synchronous invocations only: Lambda does not pass it to an Event invocation. Remove it or use RequestResponse.", nameof(options));
        }
        if (options.Timeout is { } timeout) ValidateTimeout(timeout, nameof(options));
        if ((uint)options.InvocationType > (uint)LambdaInvocationType.DryRun)
            throw new ArgumentException($"The invocation type {(int)options.InvocationType} is not one of RequestResponse, Event or DryRun.", nameof(options));
        string? clientContext = options.GetEncodedClientContext();

        string path = string.Concat(_pathPrefix, EncodeSegment(functionName), "/invocations");
        string query = options.Qualifier is null ? "" : "Qualifier=" + EncodeSegment(options.Qualifier);
        string uri = query.Length == 0 ? _origin + path : string.Concat(_origin, path, "?", query);
        // Canonicalization off: the URI goes on the wire exactly as encoded here, which is also what was signed.
        return new Target
        {
            Uri = new Uri(uri, new UriCreationOptions { DangerousDisablePathAndQueryCanonicalization = true }),
            Path = path,
            Query = query,
            ClientContext = clientContext,
        };
    }

    private HttpRequestMessage BuildSignedRequest(ReadOnlyMemory<byte> payload, string payloadHash, LambdaInvokeOptions options, in Target target,
        AwsCredentials credentials, DateTimeOffset time)
    {
        string? invocationType = options.InvocationType switch
        {
            LambdaInvocationType.Event => "Event",
            LambdaInvocationType.DryRun => "DryRun",
            _ => null, // RequestResponse is the default: not sent
        };
        int count = 1 + (invocationType is null ? 0 : 1) + (options.IncludeLogTail ? 1 : 0) + (target.ClientContext is null ? 0 : 1);
        var headers = _hostOnly;
        if (count > 1)
        {
            headers = new KeyValuePair<string, string>[count];
            int n = 0;
            headers[n++] = new("Host", _host);
            if (invocationType is not null) headers[n++] = new("X-Amz-Invocation-Type", invocationType);
            if (options.IncludeLogTail) headers[n++] = new("X-Amz-Log-Type", "Tail");
            if (target.ClientContext is not null) headers[n++] = new("X-Amz-Client-Context", target.ClientContext);
        }

        var signature = SigV4.Sign("POST", target.Path, target.Query, headers, payloadHash, time, credentials, _signing);

        var request = new HttpRequestMessage(HttpMethod.Post, target.Uri) { Content = new ReadOnlyMemoryContent(payload) };
        for (int i = 1; i < headers.Length; i++) request.Headers.TryAddWithoutValidation(headers[i].Key, headers[i].Value);
        // What SigV4Signature.HeadersToAdd lists for these options (SigV4, no x-amz-content-sha256), without its list.
        request.Headers.TryAddWithoutValidation("X-Amz-Date", signature.AmzDate);
        if (credentials.SessionToken is { } token) request.Headers.TryAddWithoutValidation("X-Amz-Security-Token", token);
        request.Headers.TryAddWithoutValidation("Authorization", signature.Authorization);
        return request;
    }

    // No length (chunked): read into pooled buffers, then copy once into an array of the right size.
    private static async Task<byte[]> ReadUnknownLengthBodyAsync(HttpContent content, CancellationToken cancellationToken)
    {
        using var stream = await content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        byte[] buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        int total = 0;
        try
        {
            while (true)
            {
                if (total == buffer.Length)
                {
                    var bigger = ArrayPool<byte>.Shared.Rent(buffer.Length * 2);
                    buffer.AsSpan(0, total).CopyTo(bigger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = bigger;
                }
                int read = await stream.ReadAsync(buffer.AsMemory(total), cancellationToken).ConfigureAwait(false);
                if (read == 0) break;
                total += read;
            }
            return total == 0 ? Array.Empty<byte>() : buffer.AsSpan(0, total).ToArray();
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static string? HeaderValue(System.Net.Http.Headers.HttpHeaders headers, string name) =>
        headers.NonValidated.TryGetValues(name, out var values) ? values.ToString() : null;

    private static string? DecodeLog(string? base64)
    {
        if (base64 is null) return null;
        try { return Encoding.UTF8.GetString(Convert.FromBase64String(base64)); }
        catch (FormatException) { return base64; }
    }

    // ---------------------------------------------------------------------------------------------------------
    // Errors.
    // ---------------------------------------------------------------------------------------------------------

    private LambdaServiceException ReadServiceError(string functionName, HttpResponseMessage response, byte[] body,
        string? requestId, AwsCredentials credentials, int attempt)
    {
        int status = (int)response.StatusCode;
        var (bodyType, message, reason) = ReadErrorBody(body);
        string errorType = ErrorTypeFromHeader(HeaderValue(response.Headers, "x-amzn-ErrorType")) ?? bodyType
            ?? (status == 429 ? "TooManyRequestsException" : "UnknownError");
        message ??= body.Length > 0 ? Json.Clip(body) : response.ReasonPhrase ?? "(no message)";
        // A signature error's message echoes the canonical request, which holds the session token when one is signed.
        if (credentials.SessionToken is { } token && message.Contains(token, StringComparison.Ordinal))
            message = message.Replace(token, "(session token)", StringComparison.Ordinal);
        // A Retry-After date is on the server's clock: measured from our clock corrected by the offset learnt, if any.
        var retryAfter = response.Headers.RetryAfter is { } ra
            ? ra.Delta ?? (ra.Date is { } d ? d - (_clock.GetUtcNow() + ClockOffset) : null)
            : null;
        return new LambdaServiceException(functionName, errorType, message, status, requestId, reason, retryAfter, attempt)
        {
            ServerDate = response.Headers.Date,
        };
    }

    // x-amzn-ErrorType: "ResourceNotFoundException:http://internal.amazon.com/coral/com.amazonaws.lambda/".
    internal static string? ErrorTypeFromHeader(string? header)
    {
        if (string.IsNullOrWhiteSpace(header)) return null;
        int colon = header.IndexOf(':');
        return (colon >= 0 ? header[..colon] : header).Trim() is { Length: > 0 } type ? type : null;
    }

    // The body: {"Type":"User","message":"..."} (Lambda), {"Message":"..."} (signature errors), {"__type":"prefix#Type",...}
    // (the JSON protocols), plus "Reason" on throttling. Lambda's "Type" is the fault's side (User or Server), not an
    // error type, so it names the error only when it is something else.
    internal static (string? Type, string? Message, string? Reason) ReadErrorBody(ReadOnlySpan<byte> body)
    {
        if (Json.TryReadObject(body, out _) is not { } values) return (null, null, null);
        string? faultType = values.GetValueOrDefault("Type");
        if (faultType is "User" or "Server") faultType = null;
        string? name = values.GetValueOrDefault("__type") ?? values.GetValueOrDefault("code") ?? values.GetValueOrDefault("Code") ?? faultType;
        if (name is not null)
        {
            int hash = name.LastIndexOf('#');
            if (hash >= 0) name = name[(hash + 1)..];
            name = ErrorTypeFromHeader(name);
        }
        return (name, values.GetValueOrDefault("message") ?? values.GetValueOrDefault("Message"), values.GetValueOrDefault("Reason"));
    }

    internal static bool IsThrottlingType(string errorType) => errorType is
        "TooManyRequestsException" or "ThrottlingException" or "Throttling" or "ThrottledException" or "RequestThrottledException"
        or "RequestLimitExceeded" or "EC2ThrottledException" or "SlowDown" or "ProvisionedThroughputExceededException"
        or "TransactionInProgressException" or "RequestThrottled" or "BandwidthLimitExceeded" or "LimitExceededException"
        or "PriorRequestNotComplete";

    private static bool IsTransientStatus(int status) => status is 500 or 502 or 503 or 504;

    // ---------------------------------------------------------------------------------------------------------
    // Retries: standard mode's backoff, quota and clock-skew correction.
    // ---------------------------------------------------------------------------------------------------------

    // Full jitter: random below min(base * 2^(attempt-1), 20 s), in whole milliseconds (what Task.Delay counts) from 1,
    // so that every wait is one on the clock's timer (Task.Delay does not ask the clock for a wait of 0).
    private TimeSpan Backoff(int attempt)
    {
        long ceiling = (long)Math.Min(_retryBaseDelay.TotalMilliseconds * Math.Pow(2, attempt - 1), MaxBackoff.TotalMilliseconds);
        return ceiling <= 1 ? TimeSpan.Zero : TimeSpan.FromMilliseconds(Random.Shared.NextInt64(1, ceiling));
    }

    private Task DelayAsync(TimeSpan delay, CancellationToken cancellationToken) => Task.Delay(delay, _clock, cancellationToken);

    // The retry quota: a failing service drains it, so that retries stop instead of multiplying the load.
    private bool TryTakeRetryTokens(int cost)
    {
        int current = Volatile.Read(ref _retryTokens);
        while (true)
        {
            if (current < cost) return false;
            int seen = Interlocked.CompareExchange(ref _retryTokens, current - cost, current);
            if (seen == current) return true;
            current = seen;
        }
    }

    private void ReturnRetryTokens(int amount)
    {
        int current = Volatile.Read(ref _retryTokens);
        while (current < RetryQuotaCapacity)
        {
            int seen = Interlocked.CompareExchange(ref _retryTokens, Math.Min(RetryQuotaCapacity, current + amount), current);
            if (seen == current) return;
            current = seen;
        }
    }

    /// <summary>The retry tokens left (500 when full).</summary>
    internal int RetryTokens => Volatile.Read(ref _retryTokens);

    // Corrects the offset when the server's clock differs by 5 minutes or more from the time the failed attempt was
    // signed with. Concurrent calls signed before a correction each see the difference and are retried; each stores
    // the offset it measured (the server's clock, give or take the network's delay), so whichever lands last will do.
    private bool TryCorrectClockSkew(LambdaServiceException e, TimeSpan signedOffset)
    {
        bool skewError = e.ErrorType is "RequestTimeTooSkewed" or "RequestExpired" or "RequestInTheFuture"
            || (e.ErrorType is "InvalidSignatureException" or "SignatureDoesNotMatch"
                && (e.ErrorMessage.Contains("Signature expired", StringComparison.OrdinalIgnoreCase)
                    || e.ErrorMessage.Contains("Signature not yet current", StringComparison.OrdinalIgnoreCase)));
        if (!skewError || e.ServerDate is not { } serverDate) return false;
        var local = _clock.GetUtcNow();
        var offset = serverDate - local;
        if ((offset - signedOffset).Duration() < ClockSkewThreshold) return false;
        Interlocked.Exchange(ref _clockOffsetTicks, offset.Ticks);
        return true;
    }

    // ---------------------------------------------------------------------------------------------------------
    // Fan-out: one engine, three ways to consume it.
    // ---------------------------------------------------------------------------------------------------------

    /// <summary>
    /// Invokes every request, at most <see cref="LambdaFanOutOptions.MaxConcurrency"/> at a time, and returns the
    /// responses in input order. Fails fast: the first failure cancels the invocations in flight, starts no new one,
    /// and is thrown (like <c>asyncio.gather</c>).
    /// </summary>
    /// <param name="requests">The requests, read lazily: at most MaxConcurrency ahead of the results.</param>
    /// <param name="options">Concurrency and progress; null for the defaults.</param>
    /// <param name="cancellationToken">Cancels every invocation in flight and stops the run.</param>
    /// <returns>The responses; element i answers request i.</returns>
    /// <exception cref="LambdaFunctionException">A function failed (the first failure).</exception>
    /// <exception cref="LambdaServiceException">Lambda answered with an error (the first failure).</exception>
    public Task<IReadOnlyList<LambdaResponse>> InvokeAllAsync(IEnumerable<LambdaRequest> requests, LambdaFanOutOptions? options = null, CancellationToken cancellationToken = default) =>
        CollectResponsesAsync(FanOutAsync(requests ?? throw new ArgumentNullException(nameof(requests)), null, CheckFanOut(options), failFast: true, cancellationToken));

    /// <inheritdoc cref="InvokeAllAsync(IEnumerable{LambdaRequest}, LambdaFanOutOptions?, CancellationToken)"/>
    public Task<IReadOnlyList<LambdaResponse>> InvokeAllAsync(IAsyncEnumerable<LambdaRequest> requests, LambdaFanOutOptions? options = null, CancellationToken cancellationToken = default) =>
        CollectResponsesAsync(FanOutAsync(null, requests ?? throw new ArgumentNullException(nameof(requests)), CheckFanOut(options), failFast: true, cancellationToken));

    /// <summary>
    /// Invokes every request, at most <see cref="LambdaFanOutOptions.MaxConcurrency"/> at a time, and returns every
    /// outcome in input order, each a success or a failure: one failure neither stops the others nor throws.
    /// </summary>
    /// <param name="requests">The requests, read lazily: at most MaxConcurrency ahead of the results.</param>
    /// <param name="options">Concurrency and progress; null for the defaults.</param>
    /// <param name="cancellationToken">Cancels every invocation in flight and stops the run (an <see cref="OperationCanceledException"/>).</param>
    /// <returns>The outcomes; element i is request i's.</returns>
    public Task<IReadOnlyList<LambdaOutcome>> InvokeAllSettledAsync(IEnumerable<LambdaRequest> requests, LambdaFanOutOptions? options = null, CancellationToken cancellationToken = default) =>
        CollectOutcomesAsync(FanOutAsync(requests ?? throw new ArgumentNullException(nameof(requests)), null, CheckFanOut(options), failFast: false, cancellationToken));

    /// <inheritdoc cref="InvokeAllSettledAsync(IEnumerable{LambdaRequest}, LambdaFanOutOptions?, CancellationToken)"/>
    public Task<IReadOnlyList<LambdaOutcome>> InvokeAllSettledAsync(IAsyncEnumerable<LambdaRequest> requests, LambdaFanOutOptions? options = null, CancellationToken cancellationToken = default) =>
        CollectOutcomesAsync(FanOutAsync(null, requests ?? throw new ArgumentNullException(nameof(requests)), CheckFanOut(options), failFast: false, cancellationToken));

    /// <summary>
    /// Invokes every request, at most <see cref="LambdaFanOutOptions.MaxConcurrency"/> at a time, and yields each
    /// outcome as it completes, with its input index (<see cref="LambdaOutcome.Index"/>). Memory stays bounded
    /// however many requests there are: a consumer that falls behind holds back new invocations.
    /// Leaving the loop early cancels the invocations in flight. Each enumeration is a new run.
    /// </summary>
    /// <param name="requests">The requests, read lazily: at most MaxConcurrency ahead of the outcomes consumed.</param>
    /// <param name="options">Concurrency and progress; null for the defaults.</param>
    /// <param name="cancellationToken">Cancels every invocation in flight and stops the run.</param>
    public IAsyncEnumerable<LambdaOutcome> InvokeEachAsync(IEnumerable<LambdaRequest> requests, LambdaFanOutOptions? options = null, CancellationToken cancellationToken = default) =>
        FanOutAsync(requests ?? throw new ArgumentNullException(nameof(requests)), null, CheckFanOut(options), failFast: false, cancellationToken);

    /// <inheritdoc cref="InvokeEachAsync(IEnumerable{LambdaRequest}, LambdaFanOutOptions?, CancellationToken)"/>
    public IAsyncEnumerable<LambdaOutcome> InvokeEachAsync(IAsyncEnumerable<LambdaRequest> requests, LambdaFanOutOptions? options = null, CancellationToken cancellationToken = default) =>
        FanOutAsync(null, requests ?? throw new ArgumentNullException(nameof(requests)), CheckFanOut(options), failFast: false, cancellationToken);

    private static LambdaFanOutOptions CheckFanOut(LambdaFanOutOptions? options)
    {
        options ??= LambdaFanOutOptions.Default;
        if (options.MaxConcurrency < 1)
            throw new ArgumentException($"MaxConcurrency must be at least 1; it was {options.MaxConcurrency}.", nameof(options));
        return options;
    }

    // The engine, consumed three ways. Outcomes come out as they complete.
    private async IAsyncEnumerable<LambdaOutcome> FanOutAsync(IEnumerable<LambdaRequest>? requests, IAsyncEnumerable<LambdaRequest>? asyncRequests,
        LambdaFanOutOptions options, bool failFast, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var input = requests is not null ? FanOutInput.From(requests) : FanOutInput.From(asyncRequests!);
        var run = new FanOutRun(this, input, options, failFast, cancellationToken);
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
            // so that no invocation outlives the run.
            await run.StopAsync().ConfigureAwait(false);
        }
    }

    // Outcomes arrive as they complete; each goes to its input position. Nothing else is held.
    private static async Task<IReadOnlyList<LambdaResponse>> CollectResponsesAsync(IAsyncEnumerable<LambdaOutcome> outcomes)
    {
        var responses = new List<LambdaResponse>();
        await foreach (var outcome in outcomes.ConfigureAwait(false))
        {
            if (outcome.Error is not null) ExceptionDispatchInfo.Throw(outcome.Error); // leaving the loop stops the run first
            Place(responses, outcome.Index, outcome.Response!);
        }
        return responses;
    }

    private static async Task<IReadOnlyList<LambdaOutcome>> CollectOutcomesAsync(IAsyncEnumerable<LambdaOutcome> outcomes)
    {
        var list = new List<LambdaOutcome>();
        await foreach (var outcome in outcomes.ConfigureAwait(false))
            Place(list, outcome.Index, outcome);
        return list;
    }

    private static void Place<T>(List<T> list, long index, T item)
    {
        if (index >= int.MaxValue)
            throw new InvalidOperationException("More than 2^31 - 1 requests cannot be collected into a list; use InvokeEachAsync to stream the outcomes.");
        while (list.Count <= index) list.Add(default!);
        list[(int)index] = item;
    }

    /// <summary>
    /// One fan-out run. Workers (at most MaxConcurrency, started as requests turn up) each take a slot, read the next
    /// request, invoke it and post the outcome; the consumer gives the slot back when it takes the outcome. So the
    /// requests read but not yet consumed, the invocations in flight among them, never exceed MaxConcurrency.
    /// </summary>
    private sealed class FanOutRun
    {
        private readonly LambdaClient _client;
        private readonly FanOutInput _input;
        private readonly IProgress<LambdaFanOutProgress>? _progress;
        private readonly bool _failFast;
        private readonly int _maxConcurrency;
        private readonly CancellationTokenSource _stop;
        private readonly SemaphoreSlim _slots;
        private readonly Channel<LambdaOutcome> _outcomes = Channel.CreateUnbounded<LambdaOutcome>(new UnboundedChannelOptions { SingleReader = true });
        private readonly TaskCompletionSource _workersDone = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _workers, _started, _inFlight, _stopped;
        private long _completed, _failed;
        private Exception? _inputFailure;

        public FanOutRun(LambdaClient client, FanOutInput input, LambdaFanOutOptions options, bool failFast, CancellationToken cancellationToken)
        {
            _client = client;
            _input = input;
            _progress = options.Progress;
            _failFast = failFast;
            _maxConcurrency = options.MaxConcurrency;
            _slots = new SemaphoreSlim(_maxConcurrency, _maxConcurrency);
            _stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        }

        public ChannelReader<LambdaOutcome> Outcomes => _outcomes.Reader;

        public void Start() => StartWorker();

        // The consumer took an outcome: its slot is free for the next request.
        public void Consumed() => _slots.Release();

        public void ThrowIfInputFailed()
        {
            if (_inputFailure is not null) ExceptionDispatchInfo.Throw(_inputFailure);
        }

        public void ReportFinal() =>
            _progress?.Report(new LambdaFanOutProgress(Interlocked.Read(ref _completed), Interlocked.Read(ref _failed), 0));

        public async ValueTask StopAsync()
        {
            Stop();
            if (Volatile.Read(ref _workers) > 0 || _started > 0) await _workersDone.Task.ConfigureAwait(false);
            await _input.DisposeAsync().ConfigureAwait(false);
            _stop.Dispose();
            _slots.Dispose();
        }

        private void Stop()
        {
            if (Interlocked.Exchange(ref _stopped, 1) != 0) return;
            try { _stop.Cancel(); }
            catch (AggregateException) { } // a callback registered on the caller's token failed; the run is stopping anyway
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
                while (!_input.Exhausted && Volatile.Read(ref _stopped) == 0)
                {
                    await _slots.WaitAsync(token).ConfigureAwait(false);
                    bool posted = false;
                    try
                    {
                        if (Volatile.Read(ref _stopped) != 0) break;
                        var (hasRequest, index, request) = await _input.NextAsync(token, this).ConfigureAwait(false);
                        if (!hasRequest) break;
                        Interlocked.Increment(ref _inFlight);
                        // Invoked here rather than in a method of its own: the worker's one state machine serves every request.
                        long started = Stopwatch.GetTimestamp();
                        LambdaOutcome done;
                        try
                        {
                            var response = await _client.InvokeCoreAsync(request.FunctionName, request.Payload, request.Options ?? LambdaInvokeOptions.Default, token).ConfigureAwait(false);
                            done = new LambdaOutcome(index, request.FunctionName, response, null, Stopwatch.GetElapsedTime(started));
                        }
                        catch (OperationCanceledException) when (token.IsCancellationRequested)
                        {
                            Interlocked.Decrement(ref _inFlight);
                            break; // the run was stopped: this request has no outcome
                        }
                        catch (Exception e)
                        {
                            done = new LambdaOutcome(index, request.FunctionName, null, e, Stopwatch.GetElapsedTime(started));
                        }
                        int inFlight = Interlocked.Decrement(ref _inFlight);
                        long completed = Interlocked.Increment(ref _completed);
                        long failed = done.Succeeded ? Interlocked.Read(ref _failed) : Interlocked.Increment(ref _failed);
                        // Fail fast: stop before the failure is posted, so that no new invocation starts after it.
                        if (!done.Succeeded && _failFast) Stop();
                        _outcomes.Writer.TryWrite(done);
                        posted = true;
                        _progress?.Report(new LambdaFanOutProgress(completed, failed, inFlight));
                    }
                    finally
                    {
                        if (!posted) _slots.Release();
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
                    _workersDone.TrySetResult();
                }
            }
        }

        // Called by the input, under its lock, after a request was read: while requests keep coming, add workers up
        // to MaxConcurrency, so that a short input never starts more workers than it has requests.
        public void OnRequestRead()
        {
            if (_started < _maxConcurrency && Volatile.Read(ref _stopped) == 0) StartWorker();
        }
    }

    /// <summary>The requests of a fan-out, read by one worker at a time.</summary>
    private abstract class FanOutInput
    {
        private long _next;
        public bool Exhausted { get; protected set; }

        public static FanOutInput From(IEnumerable<LambdaRequest> requests) =>
            new SyncInput(requests ?? throw new ArgumentNullException(nameof(requests)));

        public static FanOutInput From(IAsyncEnumerable<LambdaRequest> requests) =>
            new AsyncInput(requests ?? throw new ArgumentNullException(nameof(requests)));

        public abstract ValueTask<(bool HasRequest, long Index, LambdaRequest Request)> NextAsync(CancellationToken cancellationToken, FanOutRun run);

        public abstract ValueTask DisposeAsync();

        protected long TakeIndex() => _next++;

        private sealed class SyncInput(IEnumerable<LambdaRequest> requests) : FanOutInput
        {
            private readonly object _gate = new();
            private IEnumerator<LambdaRequest>? _enumerator;

            public override ValueTask<(bool, long, LambdaRequest)> NextAsync(CancellationToken cancellationToken, FanOutRun run)
            {
                lock (_gate)
                {
                    if (Exhausted) return new((false, 0, default));
                    _enumerator ??= requests.GetEnumerator();
                    if (!_enumerator.MoveNext())
                    {
                        Exhausted = true;
                        return new((false, 0, default));
                    }
                    var request = _enumerator.Current;
                    run.OnRequestRead();
                    return new((true, TakeIndex(), request));
                }
            }

            public override ValueTask DisposeAsync()
            {
                lock (_gate) _enumerator?.Dispose();
                return default;
            }
        }

        private sealed class AsyncInput(IAsyncEnumerable<LambdaRequest> requests) : FanOutInput
        {
            private readonly SemaphoreSlim _gate = new(1, 1);
            private IAsyncEnumerator<LambdaRequest>? _enumerator;

            public override async ValueTask<(bool, long, LambdaRequest)> NextAsync(CancellationToken cancellationToken, FanOutRun run)
            {
                await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
                try
                {
                    if (Exhausted) return (false, 0, default);
                    _enumerator ??= requests.GetAsyncEnumerator(cancellationToken);
                    if (!await _enumerator.MoveNextAsync().ConfigureAwait(false))
                    {
                        Exhausted = true;
                        return (false, 0, default);
                    }
                    var request = _enumerator.Current;
                    run.OnRequestRead();
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

    // ---------------------------------------------------------------------------------------------------------
    // Endpoints and encodings.
    // ---------------------------------------------------------------------------------------------------------

    // Positive or infinite; any positive value is accepted, those beyond what a timer takes meaning no limit.
    private static void ValidateTimeout(TimeSpan timeout, string parameterName)
    {
        if (timeout <= TimeSpan.Zero && timeout != System.Threading.Timeout.InfiniteTimeSpan)
            throw new ArgumentException($"The timeout must be positive or Timeout.InfiniteTimeSpan; it was {timeout}.", parameterName);
    }

    /// <summary>Percent-encodes a value as one path segment (or query value): everything but A-Z a-z 0-9 - . _ ~ is
    /// encoded as UTF-8, so <c>:</c> becomes <c>%3A</c>, <c>$</c> <c>%24</c> and <c>/</c> <c>%2F</c>.</summary>
    internal static string EncodeSegment(string value)
    {
        int i = 0;
        while (i < value.Length && IsUnreserved(value[i])) i++;
        if (i == value.Length) return value;

        char[] rented = ArrayPool<char>.Shared.Rent(value.Length * 9);
        try
        {
            var output = rented.AsSpan();
            value.AsSpan(0, i).CopyTo(output);
            int n = i;
            Span<byte> utf8 = stackalloc byte[4];
            while (i < value.Length)
            {
                char c = value[i];
                if (IsUnreserved(c)) { output[n++] = c; i++; continue; }
                if (Rune.DecodeFromUtf16(value.AsSpan(i), out var rune, out int consumed) != OperationStatus.Done)
                    throw new ArgumentException($"The value '{value}' has an unpaired surrogate at position {i}; give well-formed text.", nameof(value));
                int bytes = rune.EncodeToUtf8(utf8);
                for (int b = 0; b < bytes; b++)
                {
                    output[n++] = '%';
                    output[n++] = "0123456789ABCDEF"[utf8[b] >> 4];
                    output[n++] = "0123456789ABCDEF"[utf8[b] & 0xF];
                }
                i += consumed;
            }
            return new string(output[..n]);
        }
        finally
        {
            ArrayPool<char>.Shared.Return(rented);
        }
    }

    private static bool IsUnreserved(char c) => char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_' or '~';

    // The client context is JSON, sent base64-encoded; Lambda takes at most 3,583 bytes of it encoded.
    internal static string EncodeClientContext(string json)
    {
        byte[] utf8 = Encoding.UTF8.GetBytes(json);
        try
        {
            var reader = new Utf8JsonReader(utf8);
            while (reader.Read()) { }
            if (reader.BytesConsumed == 0) throw new JsonException("empty");
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"The client context must be JSON (such as {{\"custom\":{{\"user\":\"42\"}}}}); it is not: {e.Message}", "options", e);
        }
        string encoded = Convert.ToBase64String(utf8);
        if (encoded.Length > MaxClientContextLength)
            throw new ArgumentException($"The client context is {encoded.Length} bytes once base64-encoded ({utf8.Length} bytes of JSON); Lambda accepts at most {MaxClientContextLength} (about {MaxClientContextLength / 4 * 3} bytes of JSON). Make it smaller.", "options");
        return encoded;
    }
}
