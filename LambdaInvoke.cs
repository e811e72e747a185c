// LambdaInvoke.cs: AWS Lambda Invoke, one call or a concurrent fan-out: a thin layer on AwsClient.cs's send pipeline.
// Needs SigV4.cs, AwsConfig.cs and AwsClient.cs. BCL only, AOT and trimming safe.
//
//   using var lambda = new LambdaClient(new AwsClientOptions { Region = "us-east-1" });
//   LambdaResponse answer = await lambda.InvokeAsync(new LambdaRequest("my-function", """{"hello": 1}"""));
//   IReadOnlyList<LambdaResponse> all = await lambda.InvokeAllAsync(requests, new AwsFanOutOptions { MaxConcurrency = 64 });
//
// This file holds only what is Lambda's: the Invoke request (path, qualifier, headers), the response (its headers, the
// function error that comes with HTTP 200) and the function-error exception. Signing, retries, errors of the service,
// timeouts and the fan-out engine are the pipeline's. Every type compiles as internal too.
#nullable enable

using System;
using System.Buffers;
using System.Collections.Generic;
using System.Diagnostics;
using System.Net;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using System.Threading;
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

/// <summary>Whether Lambda returns the end of the function's log (<c>X-Amz-Log-Type</c>).</summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
enum LambdaLogType
{
    /// <summary>No log (the default).</summary>
    None,
    /// <summary>The last 4 KB of the log, returned decoded in <see cref="LambdaResponse.Log"/>. Synchronous invocations only.</summary>
    Tail,
}

/// <summary>One invocation: the function, its payload and its settings. The same type serves a single
/// <see cref="LambdaClient.InvokeAsync"/> and a fan-out. An instance can be sent any number of times.</summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
sealed class LambdaRequest
{
    /// <summary>Creates a request with a payload of bytes (usually UTF-8 JSON).</summary>
    /// <param name="functionName">A name (<c>my-function</c>), <c>name:qualifier</c>, a full ARN or a partial ARN (<c>123456789012:function:my-function</c>).</param>
    /// <param name="payload">The event, sent as is.</param>
    public LambdaRequest(string functionName, ReadOnlyMemory<byte> payload)
    {
        FunctionName = functionName ?? throw new ArgumentNullException(nameof(functionName));
        Payload = payload;
    }

    /// <summary>Creates a request with a text payload (usually JSON), sent as UTF-8.</summary>
    /// <inheritdoc cref="LambdaRequest(string, ReadOnlyMemory{byte})"/>
    public LambdaRequest(string functionName, string payload)
        : this(functionName, Encoding.UTF8.GetBytes(payload ?? throw new ArgumentNullException(nameof(payload)))) { }

    /// <summary>Creates a request whose payload is a value serialized as JSON by source-generated metadata (AOT and trimming safe).</summary>
    /// <param name="functionName">A name, <c>name:qualifier</c>, a full ARN or a partial ARN.</param>
    /// <param name="payload">The value to send.</param>
    /// <param name="payloadTypeInfo">Its metadata, such as <c>MyJsonContext.Default.MyEvent</c>.</param>
    public static LambdaRequest FromJson<TPayload>(string functionName, TPayload payload, JsonTypeInfo<TPayload> payloadTypeInfo)
    {
        ArgumentNullException.ThrowIfNull(payloadTypeInfo);
        return new LambdaRequest(functionName, JsonSerializer.SerializeToUtf8Bytes(payload, payloadTypeInfo));
    }

    /// <summary>The function: a name, <c>name:qualifier</c>, a full ARN or a partial ARN.</summary>
    public string FunctionName { get; }

    /// <summary>The payload, sent as is.</summary>
    public ReadOnlyMemory<byte> Payload { get; }

    /// <summary>A version or alias (<c>$LATEST</c>, <c>7</c>, <c>live</c>), sent as <c>?Qualifier=</c>; null for none.
    /// A qualifier may also end the function name (<c>my-function:live</c>).</summary>
    public string? Qualifier { get; init; }

    /// <summary>Synchronous (the default), asynchronous (<see cref="LambdaInvocationType.Event"/>) or a dry run.</summary>
    public LambdaInvocationType InvocationType { get; init; }

    /// <summary>Whether to return the end of the function's log (synchronous invocations only).</summary>
    public LambdaLogType LogType { get; init; }

    /// <summary>JSON passed to the function's context object (sent base64-encoded in <c>X-Amz-Client-Context</c>, at most
    /// 3,583 bytes once encoded). Synchronous invocations only.</summary>
    public string? ClientContext { get; init; }

    /// <summary>Whether a function error (HTTP 200 with <c>X-Amz-Function-Error</c>) throws a <see cref="LambdaFunctionException"/>
    /// (the default) or is returned as a response whose <see cref="LambdaResponse.FunctionError"/> is set and whose payload
    /// is the error object.</summary>
    public bool ThrowOnFunctionError { get; init; } = true;

    /// <summary>Overrides <see cref="AwsClientOptions.Timeout"/> for this invocation: the limit of one attempt.</summary>
    public TimeSpan? Timeout { get; init; }

    // Made once per request: a request sent again pays for it once.
    private AwsRequest? _wire;

    internal AwsRequest ToWire() => _wire ??= LambdaWire.Build(this);

    /// <summary>Shows the function, qualifier, type and payload size.</summary>
    public override string ToString() =>
        $"LambdaRequest {{ FunctionName = {FunctionName}{(Qualifier is null ? "" : ", Qualifier = " + Qualifier)}, InvocationType = {InvocationType}, Payload = {Payload.Length} bytes }}";
}

/// <summary>The answer to one invocation. Can be built for unit tests.</summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
sealed class LambdaResponse
{
    // A collecting fan-out keeps one response per call, so the usual answer (HTTP 200, $LATEST, a request id that is a
    // lowercase UUID, no log, no function error, the payload a whole array as the pipeline reads it) takes 56 bytes:
    // the request id as a Guid, anything else in an object of its own. The floor keeps only the payload; this keeps a
    // call's metadata with it at little more.
    private readonly byte[]? _payload;  // null: not a whole array (a slice, native memory), held in _unusual
    private readonly Guid _requestId;   // Guid.Empty: none, or held as text in _unusual
    private readonly Unusual? _unusual;

    private sealed record Unusual(int StatusCode, string? ExecutedVersion, string? RequestId, string? Log, string? FunctionError, ReadOnlyMemory<byte> Payload);

    // Whether this holds the usual answer in its 56 bytes (for tests).
    internal bool IsCompact => _unusual is null;

    /// <summary>Creates a response (for tests and fakes).</summary>
    public LambdaResponse(string functionName, int statusCode, ReadOnlyMemory<byte> payload, string? executedVersion = null,
        string? requestId = null, string? log = null, string? functionError = null)
    {
        FunctionName = functionName ?? throw new ArgumentNullException(nameof(functionName));
        _payload = payload.IsEmpty ? Array.Empty<byte>() : WholeArray(payload);
        if (requestId is not null && AsLowercaseUuid(requestId) is var id && id != Guid.Empty)
        {
            _requestId = id;
            requestId = null;
        }
        if (statusCode != 200 || executedVersion != "$LATEST" || requestId is not null || log is not null || functionError is not null || _payload is null)
            _unusual = new Unusual(statusCode, executedVersion, requestId, log, functionError, _payload is null ? payload : default);
    }

    private static byte[]? WholeArray(ReadOnlyMemory<byte> memory) =>
        MemoryMarshal.TryGetArray(memory, out var segment) && segment.Offset == 0 && segment.Count == segment.Array!.Length ? segment.Array : null;

    // The Guid that formats back ("D", lowercase) to the same text; Guid.Empty for any other text. Only lowercase hex
    // and dashes get to Guid's parser, which would also take upper case, spaces, "0x" and "+" (none formats back); it
    // checks where the dashes are.
    private static Guid AsLowercaseUuid(string text) =>
        text.Length == 36 && !text.AsSpan().ContainsAnyExcept(LowercaseUuidChars) && Guid.TryParseExact(text, "D", out var id) ? id : Guid.Empty;

    private static readonly SearchValues<char> LowercaseUuidChars = SearchValues.Create("0123456789abcdef-");

    /// <summary>The function name as the caller gave it.</summary>
    public string FunctionName { get; }

    /// <summary>The HTTP status: 200 (RequestResponse), 202 (Event) or 204 (DryRun).</summary>
    public int StatusCode => _unusual?.StatusCode ?? 200;

    /// <summary>The function's answer as sent (usually JSON); empty for Event and DryRun.</summary>
    public ReadOnlyMemory<byte> Payload => _payload ?? _unusual!.Payload;

    /// <summary>The version that ran (<c>X-Amz-Executed-Version</c>), such as <c>$LATEST</c>; null when not sent.</summary>
    public string? ExecutedVersion => _unusual is null ? "$LATEST" : _unusual.ExecutedVersion;

    /// <summary>Lambda's request id (<c>x-amzn-RequestId</c>).</summary>
    public string? RequestId => _requestId != Guid.Empty ? _requestId.ToString("D") : _unusual?.RequestId;

    /// <summary>The end of the function's log, decoded, when <see cref="LambdaRequest.LogType"/> asked for it.</summary>
    public string? Log => _unusual?.Log;

    /// <summary><c>Handled</c> or <c>Unhandled</c> when the function failed and <see cref="LambdaRequest.ThrowOnFunctionError"/>
    /// was off (the payload is then the error object); null when it succeeded.</summary>
    public string? FunctionError => _unusual?.FunctionError;

    /// <summary>The payload as UTF-8 text.</summary>
    public string GetPayloadString() => Encoding.UTF8.GetString(Payload.Span);

    /// <summary>Deserializes the JSON payload with source-generated metadata (AOT and trimming safe).</summary>
    /// <exception cref="JsonException">The payload is not JSON of that shape.</exception>
    public T? DeserializePayload<T>(JsonTypeInfo<T> typeInfo)
    {
        ArgumentNullException.ThrowIfNull(typeInfo);
        return JsonSerializer.Deserialize(Payload.Span, typeInfo);
    }

    /// <summary>Shows the function, status, request id and payload size.</summary>
    public override string ToString() =>
        $"LambdaResponse {{ FunctionName = {FunctionName}, StatusCode = {StatusCode}, RequestId = {RequestId}, ExecutedVersion = {ExecutedVersion}, Payload = {Payload.Length} bytes{(FunctionError is null ? "" : ", FunctionError = " + FunctionError)} }}";
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
sealed class LambdaFunctionException : AwsException
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

/// <summary>
/// Invokes AWS Lambda functions: one at a time (<see cref="InvokeAsync"/>) or many concurrently
/// (<see cref="InvokeAllAsync(IEnumerable{LambdaRequest}, AwsFanOutOptions?, CancellationToken)"/>,
/// <see cref="InvokeAllSettledAsync(IEnumerable{LambdaRequest}, AwsFanOutOptions?, CancellationToken)"/>,
/// <see cref="InvokeEachAsync(IEnumerable{LambdaRequest}, AwsFanOutOptions?, CancellationToken)"/>), through the send
/// pipeline of <see cref="AwsClient"/>: every attempt signed afresh, throttling and transient failures retried, a
/// function error (HTTP 200 with <c>X-Amz-Function-Error</c>) a <see cref="LambdaFunctionException"/>, never retried.
/// With LambdaStreaming.cs, <c>InvokeWithResponseStreamAsync</c> reads a function's response as it streams.
/// Every failure is an <see cref="AwsException"/>. Thread-safe: make one and share it.
/// </summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
sealed partial class LambdaClient : IDisposable
{
    // Lambda's synchronous payload limit (6 MB), with room for an error answer's own size.
    internal const long MaxResponseSize = 6 * 1024 * 1024 + 64 * 1024;

    private readonly AwsClient _client;

    /// <summary>Creates a client. The region and endpoint are resolved now (reading the environment and the shared config
    /// files when they are not given); nothing is sent and no credentials are read until the first call.</summary>
    /// <param name="options">The settings; null for the defaults. A null <see cref="AwsClientOptions.Timeout"/> is 16 minutes
    /// (Lambda runs a function for up to 15), a null <see cref="AwsClientOptions.MaxResponseSize"/> Lambda's 6 MB limit.</param>
    /// <exception cref="ArgumentException">A setting given in code is malformed (the region, the endpoint), or dual-stack
    /// was asked for in a partition without it.</exception>
    /// <exception cref="ArgumentOutOfRangeException">MaxAttempts, RetryBaseDelay, Timeout or MaxResponseSize is out of range.</exception>
    /// <exception cref="AwsConfigurationException">No region is set anywhere, or the configuration holds a malformed
    /// setting (the message says which).</exception>
    public LambdaClient(AwsClientOptions? options = null)
    {
        _client = new AwsClient(AwsService.Lambda, options ?? new AwsClientOptions(), signed: true, MaxResponseSize) { OwnerName = nameof(LambdaClient) };
    }

    /// <summary>The region requests are signed for.</summary>
    public string Region => _client.Region;

    /// <summary>The endpoint requests go to.</summary>
    public Uri Endpoint => _client.Endpoint;

    /// <summary>The pipeline this client sends through.</summary>
    internal AwsClient Pipeline => _client;

    /// <summary>Ends the client: calls made after it fail with <see cref="ObjectDisposedException"/>; calls already made
    /// finish as they would have. A handler given in <see cref="AwsClientOptions.HttpHandler"/> stays open: it is the caller's.</summary>
    public void Dispose() => _client.Dispose();

    /// <summary>Invokes a function.</summary>
    /// <param name="request">The function, payload and settings.</param>
    /// <param name="cancellationToken">Cancels the call (an <see cref="OperationCanceledException"/>, never retried).</param>
    /// <returns>The response.</returns>
    /// <exception cref="LambdaFunctionException">The function ran and failed (unless <see cref="LambdaRequest.ThrowOnFunctionError"/> is off).</exception>
    /// <exception cref="AwsServiceException">Lambda answered with an error, after any retries.</exception>
    /// <exception cref="AwsTimeoutException">The last attempt timed out.</exception>
    /// <exception cref="AwsConnectionException">The connection failed on every attempt.</exception>
    /// <exception cref="ArgumentException">The function name, qualifier or client context is malformed; nothing was sent.</exception>
    public Task<LambdaResponse> InvokeAsync(LambdaRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        return InvokeCoreAsync(request, null, cancellationToken);
    }

    // One async method per call: the pipeline's, which makes the response (ReadResponse) as it returns.
    private Task<LambdaResponse> InvokeCoreAsync(LambdaRequest request, FanOutContext? fanOut, CancellationToken cancellationToken)
    {
        AwsRequest wire;
        try { wire = request.ToWire(); }
        catch (ArgumentException e) { return Task.FromException<LambdaResponse>(e); } // a bad request fails its task, as a send does
        return _client.SendCoreAsync(wire, fanOut, request, ReadResponse, cancellationToken);
    }

    private static readonly Func<LambdaRequest, AwsResponse, LambdaResponse> ReadResponse = static (request, answer) =>
    {
        var response = LambdaWire.ReadResponse(request.FunctionName, answer);
        if (response.FunctionError is not null && AwsTelemetry.FunctionErrors.Enabled)
            AwsTelemetry.FunctionErrors.Add(1, new KeyValuePair<string, object?>("rpc.service", "Lambda"), new KeyValuePair<string, object?>("error.type", response.FunctionError));
        // The function ran: its error is the caller's to see, never a reason to run it again.
        if (response.FunctionError is not null && request.ThrowOnFunctionError) throw new LambdaFunctionException(response);
        return response;
    };

    private Task<LambdaResponse> InvokeInFanOut(LambdaRequest request, FanOutContext context, CancellationToken cancellationToken) =>
        InvokeCoreAsync(request ?? throw new ArgumentException("A request of the fan-out is null.", "requests"), context, cancellationToken);

    /// <summary>
    /// Invokes every request, at most <see cref="AwsFanOutOptions.MaxConcurrency"/> at a time, and returns the responses
    /// in input order. Fails fast: the first failure (a function error included) cancels the invocations in flight,
    /// starts no new one, and is thrown (like <c>asyncio.gather</c>). A throttled invocation (the function did not run)
    /// is sent again while the fan-out makes progress.
    /// </summary>
    /// <param name="requests">The requests, read lazily: at most MaxConcurrency ahead of the results.</param>
    /// <param name="options">Concurrency and progress; null for the defaults.</param>
    /// <param name="cancellationToken">Cancels every invocation in flight and stops the run.</param>
    /// <returns>The responses; element i answers request i.</returns>
    /// <exception cref="AwsException">The first failure (<see cref="LambdaFunctionException"/>, <see cref="AwsServiceException"/>, ...).</exception>
    public Task<IReadOnlyList<LambdaResponse>> InvokeAllAsync(IEnumerable<LambdaRequest> requests, AwsFanOutOptions? options = null, CancellationToken cancellationToken = default) =>
        FanOut.CollectResponsesAsync(_client.Checked(FanOutInput<LambdaRequest>.From(requests)), InvokeInFanOut, options, cancellationToken);

    /// <inheritdoc cref="InvokeAllAsync(IEnumerable{LambdaRequest}, AwsFanOutOptions?, CancellationToken)"/>
    public Task<IReadOnlyList<LambdaResponse>> InvokeAllAsync(IAsyncEnumerable<LambdaRequest> requests, AwsFanOutOptions? options = null, CancellationToken cancellationToken = default) =>
        FanOut.CollectResponsesAsync(_client.Checked(FanOutInput<LambdaRequest>.From(requests)), InvokeInFanOut, options, cancellationToken);

    /// <summary>
    /// Invokes every request, at most <see cref="AwsFanOutOptions.MaxConcurrency"/> at a time, and returns every outcome
    /// in input order, each a success or a failure: one failure neither stops the others nor throws.
    /// </summary>
    /// <param name="requests">The requests, read lazily.</param>
    /// <param name="options">Concurrency and progress; null for the defaults.</param>
    /// <param name="cancellationToken">Cancels every invocation in flight and stops the run (an <see cref="OperationCanceledException"/>).</param>
    /// <returns>The outcomes; element i is request i's.</returns>
    public Task<IReadOnlyList<AwsOutcome<LambdaRequest, LambdaResponse>>> InvokeAllSettledAsync(IEnumerable<LambdaRequest> requests, AwsFanOutOptions? options = null, CancellationToken cancellationToken = default) =>
        FanOut.CollectOutcomesAsync(_client.Checked(FanOutInput<LambdaRequest>.From(requests)), InvokeInFanOut, options, cancellationToken);

    /// <inheritdoc cref="InvokeAllSettledAsync(IEnumerable{LambdaRequest}, AwsFanOutOptions?, CancellationToken)"/>
    public Task<IReadOnlyList<AwsOutcome<LambdaRequest, LambdaResponse>>> InvokeAllSettledAsync(IAsyncEnumerable<LambdaRequest> requests, AwsFanOutOptions? options = null, CancellationToken cancellationToken = default) =>
        FanOut.CollectOutcomesAsync(_client.Checked(FanOutInput<LambdaRequest>.From(requests)), InvokeInFanOut, options, cancellationToken);

    /// <summary>
    /// Invokes every request, at most <see cref="AwsFanOutOptions.MaxConcurrency"/> at a time, and yields each outcome as
    /// it completes, with its input index. Memory stays bounded however many requests there are: a consumer that falls
    /// behind holds back new invocations. Leaving the loop early cancels the invocations in flight. Each enumeration is
    /// a new run.
    /// </summary>
    /// <param name="requests">The requests, read lazily.</param>
    /// <param name="options">Concurrency and progress; null for the defaults.</param>
    /// <param name="cancellationToken">Cancels every invocation in flight and stops the run.</param>
    public IAsyncEnumerable<AwsOutcome<LambdaRequest, LambdaResponse>> InvokeEachAsync(IEnumerable<LambdaRequest> requests, AwsFanOutOptions? options = null, CancellationToken cancellationToken = default) =>
        FanOut.Run(_client.Checked(FanOutInput<LambdaRequest>.From(requests)), InvokeInFanOut, options, failFast: false, cancellationToken);

    /// <inheritdoc cref="InvokeEachAsync(IEnumerable{LambdaRequest}, AwsFanOutOptions?, CancellationToken)"/>
    public IAsyncEnumerable<AwsOutcome<LambdaRequest, LambdaResponse>> InvokeEachAsync(IAsyncEnumerable<LambdaRequest> requests, AwsFanOutOptions? options = null, CancellationToken cancellationToken = default) =>
        FanOut.Run(_client.Checked(FanOutInput<LambdaRequest>.From(requests)), InvokeInFanOut, options, failFast: false, cancellationToken);
}

// The Invoke request and response on the wire.
internal static class LambdaWire
{
    private const int MaxClientContextLength = 3583;

    // The endpoint's own path, if any, goes before these (the pipeline's part).
    private const string PathPrefix = "/2015-03-31/functions/";
    private const string PathSuffix = "/invocations";

    public static AwsRequest Build(LambdaRequest request) => Build(request, PathPrefix, PathSuffix, "Invoke");

    // Invoke and InvokeWithResponseStream differ only in their path (and name): `/<version>/functions/` + the
    // function + `/<operation's segment>`.
    internal static AwsRequest Build(LambdaRequest request, string pathPrefix, string pathSuffix, string operationName)
    {
        string path = PathFor(request.FunctionName, pathPrefix, pathSuffix);
        Validate(request);
        int count = (request.InvocationType == LambdaInvocationType.RequestResponse ? 0 : 1) + (request.LogType == LambdaLogType.Tail ? 1 : 0) + (request.ClientContext is null ? 0 : 1);
        var headers = count == 0 ? Array.Empty<KeyValuePair<string, string>>() : new KeyValuePair<string, string>[count];
        int n = 0;
        if (request.InvocationType != LambdaInvocationType.RequestResponse) // the default: not sent
            headers[n++] = new("X-Amz-Invocation-Type", request.InvocationType == LambdaInvocationType.Event ? "Event" : "DryRun");
        if (request.LogType == LambdaLogType.Tail) headers[n++] = new("X-Amz-Log-Type", "Tail");
        if (request.ClientContext is { } context) headers[n] = new("X-Amz-Client-Context", EncodeClientContext(context));
        return new AwsRequest(System.Net.Http.HttpMethod.Post, path,
            request.Qualifier is null ? "" : "Qualifier=" + EncodeSegment(request.Qualifier))
        {
            Headers = headers,
            Body = request.Payload,
            OperationName = operationName,
            Timeout = request.Timeout,
            InvokedFunction = request.FunctionName,
        };
    }

    // The function's path, its name checked and encoded once for Invoke (at most 256 names, first come): a
    // fan-out calls a few functions many times.
    private static string PathFor(string name, string pathPrefix, string pathSuffix)
    {
        bool invoke = ReferenceEquals(pathPrefix, PathPrefix) && ReferenceEquals(pathSuffix, PathSuffix);
        if (invoke && s_invokePaths.TryGetValue(name, out var kept)) return kept;
        if (FunctionNameProblem(name) is { } problem)
            throw new ArgumentException($"The function name '{Quote(name)}' is not one Lambda takes: {problem}. Give a name (my-function: at most 64 letters, digits, '-' or '_'), " +
                "name:qualifier (my-function:live), a full ARN (arn:aws:lambda:us-east-1:123456789012:function:my-function[:qualifier]) or a partial ARN (123456789012:function:my-function[:qualifier]).", "request");
        string path = string.Concat(pathPrefix, EncodeSegment(name), pathSuffix);
        if (invoke) s_invokePaths.TryAdd(name, path, out path);
        return path;
    }

    private static readonly FirstComeCache<string, string> s_invokePaths = new(capacity: 256);

    private static void Validate(LambdaRequest request)
    {
        if (request.Qualifier is { } qualifier && !IsQualifier(qualifier))
            throw new ArgumentException($"The qualifier '{Quote(qualifier)}' is not a version or alias; give $LATEST, $LATEST.PUBLISHED, a version such as 7, or an alias such as live (at most 128 letters, digits, - and _), or leave it null.", nameof(request));
        if (request.InvocationType == LambdaInvocationType.Event)
        {
            if (request.LogType == LambdaLogType.Tail)
                throw new ArgumentException("LogType Tail applies to synchronous invocations only: Lambda returns no log for an Event invocation. Use None or RequestResponse.", nameof(request));
            if (request.ClientContext is not null)
                throw new ArgumentException("ClientContext applies to synchronous invocations only: Lambda does not pass it to an Event invocation. Remove it or use RequestResponse.", nameof(request));
        }
        if (!Enum.IsDefined(request.InvocationType))
            throw new ArgumentOutOfRangeException(nameof(request), request.InvocationType, "The invocation type must be RequestResponse, Event or DryRun.");
        if (!Enum.IsDefined(request.LogType))
            throw new ArgumentOutOfRangeException(nameof(request), request.LogType, "The log type must be None or Tail.");
        if (request.Timeout is { } timeout) AttemptTimeouts.Validate(timeout, nameof(request));
    }

    // Lambda's FunctionName pattern for Invoke (NamespacedFunctionName in its service model), matched by hand (no Regex:
    // AOT size and start-up): [arn:<partition>:lambda:][<region>:][<account>:][function:]<name>[:<qualifier>], each
    // prefix optional but in that order, 1 to 256 characters. The name is at most 64 characters (as created), and
    // not "." or "..", which the pattern lets through but a URL path would read as this or the parent resource.
    private const int MaxFunctionNameLength = 256, MaxNameLength = 64, MaxQualifierLength = 128;
    private static readonly SearchValues<char> s_nameChars = SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.");
    private static readonly SearchValues<char> s_wordChars = SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");
    private static readonly SearchValues<char> s_functionNameChars = SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:$");

    // Why the text is not a FunctionName Lambda takes, or null when it is one.
    internal static string? FunctionNameProblem(string text)
    {
        if (string.IsNullOrWhiteSpace(text)) return text.Length == 0 ? "it is empty" : "it is blank";
        if (text.Length > MaxFunctionNameLength) return $"it is {text.Length} characters long, and Lambda takes at most {MaxFunctionNameLength}";
        int bad = text.AsSpan().IndexOfAnyExcept(s_functionNameChars);
        if (bad >= 0) return $"{Describe(text[bad])} (at position {bad}) is not allowed: a name has letters, digits, '-', '_' and '.', and ':' separates an ARN's parts";
        Span<Range> ranges = stackalloc Range[9]; // an ARN with a qualifier has 8 parts
        int count = text.AsSpan().Split(ranges, ':');
        if (count > 8) return "it has more than 8 ':'-separated parts";
        var parts = ranges[..count];
        string? problem = null;
        // The last part is the name, or the qualifier after it.
        for (int qualified = 0; qualified <= 1 && count - 1 - qualified >= 0; qualified++)
        {
            int name = count - 1 - qualified;
            if (!IsPrefix(text, parts[..name])) continue;
            if (qualified == 1 && !IsQualifier(text[parts[^1]]))
            {
                problem ??= $"its qualifier '{Quote(text[parts[^1]])}' is not $LATEST, a version or an alias (letters, digits, - and _)";
                continue;
            }
            problem = NameProblem(text.AsSpan(parts[name]));
            if (problem is null) return null;
        }
        return problem ?? "its parts are not in one of Lambda's forms: before the name come, each optional but in this order, " +
            "arn:<partition>:lambda:, a region such as us-east-1, a 12-digit account id, and function:";
    }

    private static string? NameProblem(ReadOnlySpan<char> name) =>
        name.Length == 0 ? "its name is empty"
        : name.Length > MaxNameLength ? $"its name is {name.Length} characters long, and a function's name has at most {MaxNameLength}"
        : name.IndexOf(':') >= 0 || name.IndexOfAnyExcept(s_nameChars) >= 0 ? "its name has characters other than letters, digits, '-', '_' and '.'"
        : name is "." or ".." ? $"its name '{name}' names no function (a URL path reads '.' and '..' as this resource and its parent)"
        : null;

    // What may come before the name: [arn:<partition>:lambda:][<region>:][<account>:][function:], in that order. Each
    // part can be only one of these, so a greedy match is the only match.
    private static bool IsPrefix(string text, ReadOnlySpan<Range> parts)
    {
        int i = 0;
        if (parts.Length >= 3 && text.AsSpan(parts[0]) is "arn" && IsPartition(text.AsSpan(parts[1])) && text.AsSpan(parts[2]) is "lambda") i = 3;
        if (i < parts.Length && IsRegion(text.AsSpan(parts[i]))) i++;
        if (i < parts.Length && IsAccountId(text.AsSpan(parts[i]))) i++;
        if (i < parts.Length && text.AsSpan(parts[i]) is "function") i++;
        return i == parts.Length;
    }

    // (aws[a-zA-Z-]*)? : aws, aws-cn, aws-us-gov, aws-iso-b, ...; empty as the pattern allows.
    private static bool IsPartition(ReadOnlySpan<char> text) =>
        text.Length == 0 || (text.StartsWith("aws") && !text[3..].ContainsAnyExcept(s_partitionChars));

    private static readonly SearchValues<char> s_partitionChars = SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-");

    // [a-z]{2}((-gov)|(-iso[a-z]?))?-[a-z]+-\d : us-east-1, us-gov-west-1, us-isob-east-1, eu-isoe-west-1.
    private static bool IsRegion(ReadOnlySpan<char> text)
    {
        if (text.Length < 6 || !IsLower(text[..2]) || text[2] != '-' || !char.IsAsciiDigit(text[^1]) || text[^2] != '-') return false;
        var middle = text[3..^2]; // east, gov-west, isob-east
        int dash = middle.IndexOf('-');
        if (dash < 0) return IsLower(middle);
        var qualifier = middle[..dash];
        return (qualifier is "gov" || (qualifier.StartsWith("iso") && qualifier.Length <= 4 && IsLower(qualifier))) && IsLower(middle[(dash + 1)..]);
    }

    private static bool IsLower(ReadOnlySpan<char> text) => text.Length > 0 && !text.ContainsAnyExceptInRange('a', 'z');

    private static bool IsAccountId(ReadOnlySpan<char> text) => text.Length == 12 && !text.ContainsAnyExceptInRange('0', '9');

    // $LATEST, $LATEST.PUBLISHED, or a version or alias: letters, digits, - and _, at most 128 characters. (Lambda's
    // pattern for the Qualifier parameter also lets '$' through anywhere, which no version or alias can hold.)
    private static bool IsQualifier(string qualifier) =>
        qualifier is "$LATEST" or "$LATEST.PUBLISHED"
        || (qualifier.Length is > 0 and <= MaxQualifierLength && !qualifier.AsSpan().ContainsAnyExcept(s_wordChars));

    // Caller text quoted in a message: cut short (it may be long), control characters shown as code points.
    private static string Quote(string text)
    {
        string shown = text.Length <= 80 ? text : text[..80] + "...";
        if (shown.AsSpan().IndexOfAnyInRange('\u0000', '\u001f') < 0 && shown.AsSpan().IndexOfAnyInRange('\u007f', '\u009f') < 0) return shown;
        var quoted = new StringBuilder(shown.Length + 16);
        foreach (char c in shown)
            if (char.IsControl(c)) quoted.Append("\\u").Append(((int)c).ToString("x4", System.Globalization.CultureInfo.InvariantCulture));
            else quoted.Append(c);
        return quoted.ToString();
    }

    private static string Describe(char c) => char.IsControl(c) || char.IsWhiteSpace(c) ? $"U+{(int)c:X4}" : $"'{c}'";

    public static LambdaResponse ReadResponse(string functionName, AwsResponse answer)
    {
        var found = new ResponseHeaderValues();
        Span<string?> values = found;
        Debug.Assert(values.Length == ResponseHeaders.Length, "ResponseHeaderValues holds one value per name of ResponseHeaders");
        answer.GetHeaders(ResponseHeaders, values);
        return new(functionName, (int)answer.StatusCode, answer.Body, executedVersion: values[0], requestId: values[1] ?? values[2],
            log: DecodeLog(values[3]), functionError: values[4]);
    }

    // What ReadResponse reads, in one pass: the request id as AwsResponse.RequestId reads it.
    private static readonly string[] ResponseHeaders =
        ["X-Amz-Executed-Version", "x-amzn-RequestId", "x-amz-request-id", "X-Amz-Log-Result", "X-Amz-Function-Error"];

    [InlineArray(5)] // ResponseHeaders.Length, on the stack
    private struct ResponseHeaderValues
    {
        private string? _first;
    }

    private static string? DecodeLog(string? base64)
    {
        if (base64 is null) return null;
        try { return Encoding.UTF8.GetString(Convert.FromBase64String(base64)); }
        catch (FormatException) { return base64; }
    }

    // ---------------------------------------------------------------------------------------------------------
    // Encodings.
    // ---------------------------------------------------------------------------------------------------------

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
            throw new ArgumentException($"The client context must be JSON (such as {{\"custom\":{{\"user\":\"42\"}}}}); it is not: {e.Message}", "request", e);
        }
        string encoded = Convert.ToBase64String(utf8);
        if (encoded.Length > MaxClientContextLength)
            throw new ArgumentException($"The client context is {encoded.Length} bytes once base64-encoded ({utf8.Length} bytes of JSON); Lambda accepts at most {MaxClientContextLength} (about {MaxClientContextLength / 4 * 3} bytes of JSON). Make it smaller.", "request");
        return encoded;
    }
}
