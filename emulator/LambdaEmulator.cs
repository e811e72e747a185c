using System;
using System.Buffers;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Net;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace SigV4Lite.Emulator;

/// <summary>
/// A local AWS Lambda endpoint: serves the Invoke API (<c>POST /2015-03-31/functions/{FunctionName}/invocations</c>)
/// on 127.0.0.1, verifies SigV4 signatures as AWS does, and runs the functions added with
/// <see cref="AddFunction"/>. AWS clients pointed at <see cref="Endpoint"/> work unchanged. Faults can be injected
/// (<see cref="Faults"/>) and what was served is counted (<see cref="Counters"/>).
/// </summary>
public sealed partial class LambdaEmulator : IAsyncDisposable
{
    /// <summary>The largest request (and response) payload of a synchronous invocation: 6 MB.</summary>
    public const int MaxRequestResponsePayload = 6 * 1024 * 1024;

    /// <summary>The largest request payload of an asynchronous (<c>Event</c>) invocation: 1 MB.</summary>
    public const int MaxEventPayload = 1024 * 1024;

    /// <summary>The longest <c>X-Amz-Client-Context</c> header value, base64 as sent: 3,583 bytes.</summary>
    public const int MaxClientContextLength = 3583;

    // How far past its payload limit a body is still read to its end (and dropped) after the 413, so that a client
    // that is still sending reads the answer; past it the connection is closed (the client sees a broken pipe). A
    // body that never ends costs a connection no more than this.
    internal const int BodySlack = MaxRequestResponsePayload;

    // Per connection: the request line, the headers, and what is received ahead of the emulator's reading. AWS SDK
    // requests need a fraction (a session token and a client context are a few KB); Kestrel's defaults are 8 KB,
    // 32 KB, 100 headers and 1 MB.
    internal const int MaxRequestLineSize = 8 * 1024;
    internal const int MaxRequestHeadersTotalSize = 32 * 1024;
    internal const int MaxRequestHeaderCount = 100;
    internal const int MaxRequestBufferSize = 64 * 1024;

    private const string ErrorTypeSuffix = ":http://internal.amazon.com/coral/com.amazonaws.lambda/";
    private const string InvokePathPrefix = "/2015-03-31/functions/";
    private const string InvokePathSuffix = "/invocations";
    private const string StreamPathPrefix = "/2021-11-15/functions/";
    private const string StreamPathSuffix = "/response-streaming-invocations";
    private const string RequestResponse = "RequestResponse";
    private const string Event = "Event";
    private const string DryRun = "DryRun";
    private const string DefaultAccount = "123456789012";

    private static readonly FunctionEntry s_echo = new(Echo, StreamingEcho, null);
    private static readonly byte[] s_null = "null"u8.ToArray();
    private static readonly JsonWriterOptions s_jsonOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    [ThreadStatic] private static List<KeyValuePair<string, string>>? t_headers;

    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<string, FunctionEntry> _functions = new(StringComparer.Ordinal);
    private readonly Dictionary<string, AwsCredentials> _credentials;
    private readonly SigV4Verifier? _verifier;
    private readonly bool _writesDate;
    private readonly CancellationTokenSource _stopping = new();
    private readonly HashSet<Task> _background = new();
    private int _disposed;

    private LambdaEmulator(LambdaEmulatorOptions options)
    {
        Options = options;
        _credentials = options.Credentials.ToDictionary(pair => pair.Key, pair => new AwsCredentials(pair.Key, pair.Value), StringComparer.Ordinal);
        if (options.VerifySignatures)
            _verifier = new SigV4Verifier(FindCredentials, new SigV4Options("lambda", options.Region)) { Clock = options.Clock };
        // Kestrel writes a cached Date from the system clock; a test clock must show in Date too, since clients
        // correct their clock skew from it.
        _writesDate = !ReferenceEquals(options.Clock, TimeProvider.System);

        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(kestrel =>
        {
            kestrel.Listen(IPAddress.Loopback, options.Port);
            kestrel.AddServerHeader = false;
            SetLimits(kestrel.Limits, options);
        });
        _app = builder.Build();
        _app.Run(HandleAsync);
    }

    // What one connection may cost, and how many there may be. The payload limits are Lambda's, answered by the
    // emulator as Lambda does (413 RequestTooLargeException); Kestrel's body limit only stops reading a body that
    // goes on past them.
    private static void SetLimits(KestrelServerLimits limits, LambdaEmulatorOptions options)
    {
        limits.MaxConcurrentConnections = options.MaxConcurrentConnections;
        limits.MaxRequestBodySize = MaxRequestResponsePayload + BodySlack;
        limits.MaxRequestLineSize = MaxRequestLineSize;
        limits.MaxRequestHeadersTotalSize = MaxRequestHeadersTotalSize;
        limits.MaxRequestHeaderCount = MaxRequestHeaderCount;
        limits.MaxRequestBufferSize = MaxRequestBufferSize;
    }

    /// <summary>
    /// Starts an emulator on 127.0.0.1 and returns once it accepts requests.
    /// </summary>
    /// <param name="options">Port, credentials, region and behaviour; the defaults when null.</param>
    /// <param name="cancellationToken">Cancels the start.</param>
    /// <exception cref="ArgumentException">An option is invalid (the message says which).</exception>
    /// <exception cref="System.IO.IOException">The port is in use.</exception>
    public static async Task<LambdaEmulator> StartAsync(LambdaEmulatorOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new LambdaEmulatorOptions();
        Validate(options);
        var emulator = new LambdaEmulator(options);
        try
        {
            await emulator._app.StartAsync(cancellationToken).ConfigureAwait(false);
            emulator.Endpoint = new Uri(emulator._app.Urls.First() + "/");
            return emulator;
        }
        catch
        {
            await emulator.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The base address clients use as their endpoint, e.g. <c>http://127.0.0.1:40123/</c>.</summary>
    public Uri Endpoint { get; private set; } = null!;

    /// <summary>The options the emulator runs with.</summary>
    public LambdaEmulatorOptions Options { get; }

    /// <summary>Fault injection for the next invocation requests.</summary>
    public EmulatorFaults Faults { get; } = new();

    /// <summary>What has been served.</summary>
    public EmulatorCounters Counters { get; } = new();

    /// <summary>
    /// Adds a function, or replaces the one of that name. Callers may use any form of the name (ARN, qualifier).
    /// </summary>
    /// <param name="name">The function's bare name: 1 to 64 letters, digits, '-' or '_'.</param>
    /// <param name="handler">What the function does.</param>
    /// <param name="concurrencyLimit">Its reserved concurrency: a synchronous invocation beyond this many running at
    /// once answers 429 TooManyRequestsException, Reason ReservedFunctionConcurrentInvocationLimitExceeded. Null
    /// for no limit; 0 throttles every synchronous invocation.</param>
    /// <exception cref="ArgumentException">The name is not a valid function name.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The limit is negative.</exception>
    public void AddFunction(string name, LambdaFunctionHandler handler, int? concurrencyLimit = null)
    {
        ArgumentNullException.ThrowIfNull(handler);
        Add(name, new FunctionEntry(handler, null, concurrencyLimit));
    }

    /// <summary>
    /// Adds a function that streams its response, or replaces the one of that name. InvokeWithResponseStream gets its
    /// chunks as it writes them; Invoke gets them gathered into one answer, as Lambda buffers them.
    /// </summary>
    /// <param name="name">The function's bare name: 1 to 64 letters, digits, '-' or '_'.</param>
    /// <param name="handler">What the function does: it writes its response to the stream it is given.</param>
    /// <param name="concurrencyLimit">Its reserved concurrency, as for <see cref="AddFunction"/>.</param>
    /// <exception cref="ArgumentException">The name is not a valid function name.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The limit is negative.</exception>
    public void AddStreamingFunction(string name, LambdaStreamingFunctionHandler handler, int? concurrencyLimit = null)
    {
        ArgumentNullException.ThrowIfNull(handler);
        Add(name, new FunctionEntry(null, handler, concurrencyLimit));
    }

    private void Add(string name, FunctionEntry function)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (!FunctionName.IsCreatableName(name))
            throw new ArgumentException($"'{name}' is not a function name: give the bare name, 1 to 64 letters, digits, '-' or '_' (no ARN or qualifier).", nameof(name));
        if (function.ConcurrencyLimit < 0)
            throw new ArgumentOutOfRangeException("concurrencyLimit", function.ConcurrencyLimit, "The concurrency limit must be 0 or more, or null for none.");
        _functions[name] = function;
    }

    /// <summary>
    /// The echo function: answers <c>{"function":"&lt;name&gt;","payload":&lt;payload&gt;}</c>, the payload as sent
    /// (<c>null</c> when empty). What unknown functions run with <see cref="LambdaEmulatorOptions.EchoUnknownFunctions"/>.
    /// </summary>
    public static ValueTask<byte[]> Echo(LambdaInvocation invocation, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(invocation);
        ReadOnlySpan<byte> head = "{\"function\":\""u8;
        ReadOnlySpan<byte> middle = "\",\"payload\":"u8;
        ReadOnlySpan<byte> payload = invocation.Payload.IsEmpty ? s_null : invocation.Payload.Span;
        string name = invocation.FunctionName; // validated: letters, digits, '-', '_', '.': nothing to escape
        var result = new byte[head.Length + name.Length + middle.Length + payload.Length + 1];
        head.CopyTo(result);
        int at = head.Length + Encoding.ASCII.GetBytes(name, result.AsSpan(head.Length));
        middle.CopyTo(result.AsSpan(at));
        payload.CopyTo(result.AsSpan(at + middle.Length));
        result[^1] = (byte)'}';
        return new ValueTask<byte[]>(result);
    }

    /// <summary>How long <see cref="StreamingEcho"/> waits between its chunks: 50 ms.</summary>
    public static readonly TimeSpan StreamingEchoInterval = TimeSpan.FromMilliseconds(50);

    /// <summary>
    /// The echo, streamed: <see cref="Echo"/>'s answer written in four chunks (fewer when it is shorter than four
    /// bytes), <see cref="StreamingEchoInterval"/> apart. What unknown functions stream with
    /// <see cref="LambdaEmulatorOptions.EchoUnknownFunctions"/> (their Invoke answers with <see cref="Echo"/> at once).
    /// </summary>
    public static async ValueTask StreamingEcho(LambdaInvocation invocation, LambdaResponseStream response, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(response);
        byte[] answer = await Echo(invocation, cancellationToken).ConfigureAwait(false);
        int size = (answer.Length + 3) / 4;
        for (int at = 0; at < answer.Length; at += size)
        {
            if (at > 0) await Task.Delay(StreamingEchoInterval, cancellationToken).ConfigureAwait(false);
            await response.WriteAsync(answer.AsMemory(at, Math.Min(size, answer.Length - at)), cancellationToken).ConfigureAwait(false);
        }
    }

    // The echo under a name, for both operations: Invoke answers at once, InvokeWithResponseStream streams.
    internal void AddEcho(string name) => Add(name, s_echo);

    /// <summary>Stops listening, cancels the running functions' tokens and waits (a few seconds at most) for
    /// requests and background (<c>Event</c>) invocations to finish.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        _stopping.Cancel();
        using (var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5)))
        {
            try
            {
                await _app.StopAsync(timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Requests still running after the timeout have had their connections aborted.
            }
        }
        Task[] background;
        lock (_background) background = _background.ToArray();
        try
        {
            await Task.WhenAll(background).WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // A function that ignores its token is left to finish on its own.
        }
        await _app.DisposeAsync().ConfigureAwait(false);
        foreach (var credentials in _credentials.Values) credentials.Dispose();
        _stopping.Dispose();
    }

    /// <inheritdoc/>
    public override string ToString() => $"LambdaEmulator {{ Endpoint = {Endpoint}, Functions = [{string.Join(", ", _functions.Keys)}] }}";

    private static void Validate(LambdaEmulatorOptions options)
    {
        if (options.Port is < 0 or > 65535)
            throw new ArgumentOutOfRangeException(nameof(options), options.Port, "The port must be 0 (any free port) to 65535.");
        if (options.Credentials is null)
            throw new ArgumentException("Credentials must not be null; give access key id to secret access key pairs.", nameof(options));
        if (options.Clock is null)
            throw new ArgumentException("Clock must not be null; use TimeProvider.System for the real time.", nameof(options));
        if (options.MaxConcurrentConnections < 1)
            throw new ArgumentOutOfRangeException(nameof(options), options.MaxConcurrentConnections, "MaxConcurrentConnections must be at least 1.");
        _ = new SigV4Options("lambda", options.Region); // a region is a plain token, such as us-east-1
        foreach (var (id, secret) in options.Credentials)
            if (string.IsNullOrWhiteSpace(id) || string.IsNullOrEmpty(secret))
                throw new ArgumentException($"The credentials for access key id '{id}' are incomplete: both the access key id and its secret must be non-empty.", nameof(options));
    }

    private AwsCredentials? FindCredentials(string accessKeyId) => _credentials.GetValueOrDefault(accessKeyId);

    private async Task HandleAsync(HttpContext context)
    {
        Counters.RequestStarted();
        try
        {
            await ServeAsync(context).ConfigureAwait(false);
        }
        finally
        {
            Counters.RequestEnded();
        }
    }

    // One request, checked in this order: declared size, everything of the signature that needs no body (form, key,
    // scope, time), size as read, the whole signature, operation, parameters; then an injected fault, the function,
    // its payload and its concurrency. No body is buffered before its request is known to be possibly valid: an
    // unsigned or wrongly signed request costs no more than its headers, whatever body it sends.
    private async Task ServeAsync(HttpContext context)
    {
        var request = context.Request;
        var response = context.Response;
        string requestId = Guid.NewGuid().ToString();
        response.Headers["x-amzn-RequestId"] = requestId;
        if (_writesDate) response.Headers.Date = Options.Clock.GetUtcNow().ToString("r", CultureInfo.InvariantCulture);

        // The path and query exactly as sent: the signature covers them, and the function name is decoded here.
        string target = context.Features.GetRequiredFeature<IHttpRequestFeature>().RawTarget;
        var (path, query) = SplitTarget(target);

        string invocationType = HeaderOrNull(request, "X-Amz-Invocation-Type") ?? RequestResponse;
        int limit = invocationType == Event ? MaxEventPayload : MaxRequestResponsePayload;
        if (invocationType == Event && context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } bodySize)
            bodySize.MaxRequestBodySize = MaxEventPayload + BodySlack;
        if (request.ContentLength > limit)
        {
            await RefuseTooLargeAsync(response, limit).ConfigureAwait(false);
            return;
        }
        if (_verifier is not null && Verify(request, path, query, body: null) is { } refused)
        {
            await RefuseSignatureAsync(response, refused).ConfigureAwait(false);
            return;
        }
        byte[]? body = await ReadBodyAsync(request, limit, context.RequestAborted).ConfigureAwait(false);
        if (body is null)
        {
            await RefuseTooLargeAsync(response, limit).ConfigureAwait(false);
            return;
        }
        if (_verifier is not null && Verify(request, path, query, body) is { } invalid)
        {
            await RefuseSignatureAsync(response, invalid).ConfigureAwait(false);
            return;
        }

        if (!HttpMethods.IsPost(request.Method) || !TryGetFunctionSegment(path, out string segment, out bool streaming))
        {
            await WriteErrorAsync(response, 404, "UnknownOperationException",
                $"The emulator serves Lambda's Invoke, POST {InvokePathPrefix}{{FunctionName}}{InvokePathSuffix}, and InvokeWithResponseStream, " +
                $"POST {StreamPathPrefix}{{FunctionName}}{StreamPathSuffix}; not {request.Method} {Shorten(path)}.").ConfigureAwait(false);
            return;
        }

        var call = await ReadParametersAsync(context, segment, query, invocationType, streaming).ConfigureAwait(false);
        if (call is null) return;
        var fault = await ApplyFaultAsync(context).ConfigureAwait(false);
        if (fault == FaultOutcome.Answered) return;
        var function = await FindFunctionAsync(response, call, body).ConfigureAwait(false);
        if (function is null) return;

        bool truncate = fault == FaultOutcome.Truncate;
        string executedVersion = call.Qualifier ?? FunctionName.Latest;
        if (invocationType == DryRun)
        {
            response.StatusCode = 204;
            response.Headers["X-Amz-Executed-Version"] = executedVersion;
            if (truncate) context.Abort();
            return;
        }
        var invocation = new LambdaInvocation(call.Name.Name, call.Qualifier, body, invocationType, call.ClientContext, requestId);
        if (invocationType == Event)
        {
            RunInBackground(function, invocation);
            response.StatusCode = 202;
            response.Headers["X-Amz-Executed-Version"] = executedVersion;
            if (truncate) context.Abort();
            return;
        }

        if (!TryEnter(function))
        {
            await WriteErrorAsync(response, 429, "TooManyRequestsException", "Rate Exceeded.",
                reason: "ReservedFunctionConcurrentInvocationLimitExceeded").ConfigureAwait(false);
            return;
        }
        // As in Lambda, a buffered invocation stops counting against the concurrency when the function returns, before
        // its answer is written: a client that sends its next call on reading the answer is never throttled by the
        // write still under way. A streaming one counts until its stream ends.
        var running = new RunningInvocation(function);
        try
        {
            if (streaming)
                await StreamAsync(context, function, invocation, call.LogType, executedVersion, truncate).ConfigureAwait(false);
            else
                await InvokeAsync(context, function, invocation, call.LogType, executedVersion, truncate, running).ConfigureAwait(false);
        }
        finally
        {
            running.End();
        }
    }

    // The parameters of an invocation request: name, qualifier, invocation type, log type, client context. Answers the
    // error and returns null when one is malformed.
    private async Task<InvocationCall?> ReadParametersAsync(HttpContext context, string segment, string query, string invocationType, bool streaming)
    {
        var response = context.Response;
        string nameText = Uri.UnescapeDataString(segment);
        if (!FunctionName.TryParse(nameText, out var functionName))
        {
            await WriteErrorAsync(response, 400, "ValidationException",
                $"1 validation error detected: Value '{Shorten(nameText)}' at 'functionName' failed to satisfy constraint: Member must satisfy regular expression pattern: {FunctionName.Pattern}").ConfigureAwait(false);
            return null;
        }
        string? qualifier = functionName.Qualifier;
        if (QueryValue(query, "Qualifier") is { } queryQualifier)
        {
            if (!FunctionName.IsQualifier(queryQualifier))
            {
                await WriteErrorAsync(response, 400, "ValidationException",
                    $"1 validation error detected: Value '{Shorten(queryQualifier)}' at 'qualifier' failed to satisfy constraint: Member must satisfy regular expression pattern: (|[a-zA-Z0-9$_-]+)").ConfigureAwait(false);
                return null;
            }
            if (qualifier is not null && qualifier != queryQualifier)
            {
                await WriteErrorAsync(response, 400, "InvalidParameterValueException",
                    "The derived qualifier from the function name does not match the specified qualifier.").ConfigureAwait(false);
                return null;
            }
            qualifier = queryQualifier;
        }
        // InvokeWithResponseStream knows no Event invocations.
        if (streaming ? invocationType is not (RequestResponse or DryRun) : invocationType is not (RequestResponse or Event or DryRun))
        {
            await WriteErrorAsync(response, 400, "ValidationException",
                $"1 validation error detected: Value '{Shorten(invocationType)}' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: " +
                (streaming ? "[RequestResponse, DryRun]" : "[Event, RequestResponse, DryRun]")).ConfigureAwait(false);
            return null;
        }
        string? logType = HeaderOrNull(context.Request, "X-Amz-Log-Type");
        if (logType is not (null or "None" or "Tail"))
        {
            await WriteErrorAsync(response, 400, "ValidationException",
                $"1 validation error detected: Value '{Shorten(logType)}' at 'logType' failed to satisfy constraint: Member must satisfy enum value set: [None, Tail]").ConfigureAwait(false);
            return null;
        }
        string? clientContext = null;
        if (HeaderOrNull(context.Request, "X-Amz-Client-Context") is { } encodedContext)
        {
            // AWS documents the limit but not the error it answers; the service model gives the header no length
            // constraint (so no ValidationException), and a malformed client context is InvalidRequestContentException,
            // so an over-long one is answered the same way. Unconfirmed against AWS.
            // Kestrel refuses non-ASCII header values, so the length in characters is the length in bytes.
            if (encodedContext.Length > MaxClientContextLength)
            {
                await WriteErrorAsync(response, 400, "InvalidRequestContentException",
                    $"Client context must be at most {MaxClientContextLength} bytes of Base64-encoded JSON; this one is {encodedContext.Length}.").ConfigureAwait(false);
                return null;
            }
            if (!TryDecodeClientContext(encodedContext, out clientContext))
            {
                await WriteErrorAsync(response, 400, "InvalidRequestContentException",
                    "Client context must be a valid Base64-encoded JSON object.").ConfigureAwait(false);
                return null;
            }
        }
        return new InvocationCall(functionName, qualifier, logType, clientContext);
    }

    // The next injected fault: answered (or the connection reset) here, or a truncation to apply to the answer.
    private async Task<FaultOutcome> ApplyFaultAsync(HttpContext context)
    {
        if (Faults.Next() is not { } fault) return FaultOutcome.None;
        var response = context.Response;
        switch (fault.Kind)
        {
            case FaultKind.Fail:
                await WriteErrorAsync(response, fault.Status, fault.ErrorType,
                    $"The emulator injected this fault ({fault.Status} {fault.ErrorType}).").ConfigureAwait(false);
                return FaultOutcome.Answered;
            case FaultKind.Throttle:
                if (fault.RetryAfter is { } retryAfter)
                    response.Headers.RetryAfter = ((long)Math.Ceiling(retryAfter.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
                await WriteErrorAsync(response, 429, "TooManyRequestsException", "Rate Exceeded.", reason: fault.Reason).ConfigureAwait(false);
                return FaultOutcome.Answered;
            case FaultKind.Reset:
                context.Abort();
                return FaultOutcome.Answered;
            case FaultKind.Delay:
                try
                {
                    await Task.Delay(fault.Delay, context.RequestAborted).ConfigureAwait(false);
                    return FaultOutcome.None;
                }
                catch (OperationCanceledException)
                {
                    return FaultOutcome.Answered; // the caller gave up
                }
            default:
                return FaultOutcome.Truncate;
        }
    }

    // The function asked for, once the payload is known to be JSON; answers the error and returns null otherwise.
    private async Task<FunctionEntry?> FindFunctionAsync(HttpResponse response, InvocationCall call, byte[] body)
    {
        if (!_functions.TryGetValue(call.Name.Name, out var function))
        {
            if (!Options.EchoUnknownFunctions)
            {
                string arn = $"arn:aws:lambda:{call.Name.Region ?? Options.Region}:{call.Name.Account ?? DefaultAccount}:function:{call.Name.Name}"
                    + (call.Qualifier is null ? "" : ":" + call.Qualifier);
                await WriteErrorAsync(response, 404, "ResourceNotFoundException", "Function not found: " + arn).ConfigureAwait(false);
                return null;
            }
            function = s_echo;
        }
        if (body.Length > 0 && JsonError(body) is { } jsonError)
        {
            await WriteErrorAsync(response, 400, "InvalidRequestContentException", "Could not parse request body into json: " + jsonError).ConfigureAwait(false);
            return null;
        }
        return function;
    }

    // A synchronous invocation under the function's reserved concurrency, if it has one.
    private static bool TryEnter(FunctionEntry function)
    {
        if (function.ConcurrencyLimit is not int limit) return true;
        if (Interlocked.Increment(ref function.Running) <= limit) return true;
        Interlocked.Decrement(ref function.Running);
        return false;
    }

    private static void Exit(FunctionEntry function)
    {
        if (function.ConcurrencyLimit is not null) Interlocked.Decrement(ref function.Running);
    }

    // An invocation that holds a unit of its function's concurrency until End, which may be called more than once.
    private sealed class RunningInvocation(FunctionEntry function)
    {
        private int _ended;

        public void End()
        {
            if (Interlocked.Exchange(ref _ended, 1) == 0) Exit(function);
        }
    }

    // Invoke: the function's whole answer, or its error object with X-Amz-Function-Error.
    private async Task InvokeAsync(HttpContext context, FunctionEntry function, LambdaInvocation invocation, string? logType, string executedVersion, bool truncate,
        RunningInvocation running)
    {
        var response = context.Response;
        byte[] result;
        string? functionError = null;
        // The function sees its caller give up (a timeout, a cancelled call, a closed connection) as well as the
        // emulator stop.
        using (var cancellation = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token, context.RequestAborted))
        {
            try
            {
                result = await RunToEndAsync(function, invocation, cancellation.Token).ConfigureAwait(false);
            }
            catch (LambdaHandledErrorException e)
            {
                // The function returned this error object itself: the body keeps Lambda's three fields, with no
                // emulator frames in the stack trace.
                result = FunctionErrorBody(e.ErrorMessage, e.ErrorType, null);
                functionError = "Handled";
            }
            catch (Exception e)
            {
                result = FunctionErrorBody(e.Message, e.GetType().Name, e.StackTrace);
                functionError = "Unhandled";
            }
        }
        running.End(); // the function has returned; writing its answer takes no concurrency
        if (context.RequestAborted.IsCancellationRequested)
        {
            Counters.ClientDisconnected(); // no one to answer
            return;
        }
        if (functionError is null && result.Length > MaxRequestResponsePayload)
        {
            result = FunctionErrorBody($"Response payload size exceeded maximum allowed payload size ({MaxRequestResponsePayload} bytes).", "Function.ResponseSizeTooLarge", null);
            functionError = "Unhandled";
        }

        response.StatusCode = 200;
        response.ContentType = "application/json";
        response.Headers["X-Amz-Executed-Version"] = executedVersion;
        if (functionError is not null) response.Headers["X-Amz-Function-Error"] = functionError;
        if (logType == "Tail") response.Headers["X-Amz-Log-Result"] = invocation.LogTailBase64();
        response.ContentLength = result.Length;
        if (truncate)
        {
            // Ending the response short of its Content-Length makes Kestrel close the connection once the bytes
            // written are sent (an abort could drop them unsent). With nothing to send, abort.
            if (result.Length < 2) context.Abort();
            else await response.Body.WriteAsync(result.AsMemory(0, result.Length / 2), context.RequestAborted).ConfigureAwait(false);
            return;
        }
        await response.Body.WriteAsync(result, context.RequestAborted).ConfigureAwait(false);
    }

    // Runs either kind of function to its end: a streaming function's chunks are gathered into one answer, as
    // Lambda's Invoke buffers a streaming function's response.
    private static async ValueTask<byte[]> RunToEndAsync(FunctionEntry function, LambdaInvocation invocation, CancellationToken cancellationToken)
    {
        if (function.Handler is { } handler)
            return await handler(invocation, cancellationToken).ConfigureAwait(false) ?? s_null;
        var gathered = LambdaResponseStream.Gathering(cancellationToken);
        await function.StreamingHandler!(invocation, gathered, cancellationToken).ConfigureAwait(false);
        return gathered.ToArray();
    }

    // The verifier's verdict when the request is not validly signed, else null. Without a body, only what needs none
    // is checked (the body has not been read yet).
    private SigV4VerificationResult? Verify(HttpRequest request, string path, string query, byte[]? body)
    {
        // The verifier is synchronous, so one list per thread serves every request on it.
        var headers = t_headers ??= new List<KeyValuePair<string, string>>(16);
        try
        {
            foreach (var (name, values) in request.Headers)
                foreach (var value in values)
                    headers.Add(new(name, value ?? ""));
            if (body is null) return _verifier!.CheckBeforeBody(path, query, headers);
            var verdict = _verifier!.Verify(request.Method, path, query, headers, body);
            return verdict.IsValid ? null : verdict;
        }
        finally
        {
            headers.Clear();
        }
    }

    private Task RefuseSignatureAsync(HttpResponse response, SigV4VerificationResult verdict)
    {
        Counters.SignatureFailed();
        return WriteErrorAsync(response, 403, verdict.ErrorCode, verdict.Message, messageField: "Message");
    }

    // Kestrel reads and drops the unread rest of the body after the answer (up to its MaxRequestBodySize), so the
    // client can finish sending and read the 413 instead of failing on a closed connection.
    private static Task RefuseTooLargeAsync(HttpResponse response, int limit) =>
        WriteErrorAsync(response, 413, "RequestTooLargeException", $"Request must be smaller than {limit} bytes for the InvokeFunction operation");

    private void RunInBackground(FunctionEntry function, LambdaInvocation invocation)
    {
        // Only the emulator's stop cancels it: its caller has the 202 and its request is over.
        var task = Task.Run(async () =>
        {
            try
            {
                await RunToEndAsync(function, invocation, _stopping.Token).ConfigureAwait(false);
            }
            catch
            {
                // An asynchronous invocation's failure goes to Lambda's retries and destinations, which are out of
                // scope: the caller has its 202 already.
            }
        });
        lock (_background) _background.Add(task);
        task.ContinueWith(static (done, state) =>
        {
            var set = (HashSet<Task>)state!;
            lock (set) set.Remove(done);
        }, _background, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private static (string Path, string Query) SplitTarget(string target)
    {
        // Absolute-form targets (http://host/path) come from proxies; the path starts at the first '/' after the host.
        if (!target.StartsWith('/') && target.IndexOf("://", StringComparison.Ordinal) is int scheme and >= 0)
        {
            int slash = target.IndexOf('/', scheme + 3);
            target = slash < 0 ? "/" : target[slash..];
        }
        int q = target.IndexOf('?');
        return q < 0 ? (target, "") : (target[..q], target[(q + 1)..]);
    }

    // The function name segment of an Invoke or InvokeWithResponseStream (streaming) path.
    private static bool TryGetFunctionSegment(string path, out string segment, out bool streaming)
    {
        streaming = path.StartsWith(StreamPathPrefix, StringComparison.Ordinal);
        var (prefix, suffix) = streaming ? (StreamPathPrefix, StreamPathSuffix) : (InvokePathPrefix, InvokePathSuffix);
        segment = "";
        if (!path.StartsWith(prefix, StringComparison.Ordinal) || !path.EndsWith(suffix, StringComparison.Ordinal)
            || path.Length <= prefix.Length + suffix.Length)
            return false;
        segment = path[prefix.Length..^suffix.Length];
        return !segment.Contains('/');
    }

    private static string? QueryValue(string query, string name)
    {
        foreach (var range in query.AsSpan().Split('&'))
        {
            var pair = query.AsSpan(range);
            int eq = pair.IndexOf('=');
            var key = eq < 0 ? pair : pair[..eq];
            if (key.SequenceEqual(name))
                return eq < 0 ? "" : Uri.UnescapeDataString(pair[(eq + 1)..].ToString());
        }
        return null;
    }

    private static string? HeaderOrNull(HttpRequest request, string name)
    {
        var values = request.Headers[name];
        return values.Count == 0 ? null : values.ToString();
    }

    private static async ValueTask<byte[]?> ReadBodyAsync(HttpRequest request, int limit, CancellationToken cancellationToken)
    {
        if (request.ContentLength is long length)
        {
            if (length == 0) return [];
            var body = GC.AllocateUninitializedArray<byte>((int)length);
            await request.Body.ReadExactlyAsync(body, cancellationToken).ConfigureAwait(false);
            return body;
        }
        // Chunked: read up to one byte past the limit to tell "at the limit" from "over it".
        byte[] buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            int total = 0;
            while (true)
            {
                if (total == buffer.Length)
                {
                    var larger = ArrayPool<byte>.Shared.Rent(Math.Min(buffer.Length * 2, limit + 1));
                    buffer.AsSpan(0, total).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                }
                int read = await request.Body.ReadAsync(buffer.AsMemory(total), cancellationToken).ConfigureAwait(false);
                if (read == 0) return buffer.AsSpan(0, total).ToArray();
                total += read;
                if (total > limit) return null;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static string? JsonError(byte[] body)
    {
        try
        {
            var reader = new Utf8JsonReader(body);
            while (reader.Read()) { }
            return null;
        }
        catch (JsonException e)
        {
            return e.Message;
        }
    }

    private static bool TryDecodeClientContext(string encoded, out string? json)
    {
        json = null;
        byte[] bytes;
        try
        {
            bytes = Convert.FromBase64String(encoded);
        }
        catch (FormatException)
        {
            return false;
        }
        try
        {
            var reader = new Utf8JsonReader(bytes);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject) return false;
            reader.Skip();
            if (reader.Read()) return false;
        }
        catch (JsonException)
        {
            return false;
        }
        json = Encoding.UTF8.GetString(bytes);
        return true;
    }

    private static byte[] FunctionErrorBody(string message, string errorType, string? stackTrace)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(buffer, s_jsonOptions))
        {
            json.WriteStartObject();
            json.WriteString("errorMessage", message);
            json.WriteString("errorType", errorType);
            json.WriteStartArray("stackTrace");
            foreach (var line in (stackTrace ?? "").Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                json.WriteStringValue(line);
            json.WriteEndArray();
            json.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    // An error as AWS's JSON protocols send it: the type in x-amzn-ErrorType (clients strip the suffix) and a body
    // {"Type","message"} (signature errors say "Message"), with "Reason" on 429.
    private static Task WriteErrorAsync(HttpResponse response, int status, string errorType, string message,
        string messageField = "message", string? reason = null)
    {
        response.StatusCode = status;
        response.Headers["x-amzn-ErrorType"] = errorType + ErrorTypeSuffix;
        response.ContentType = "application/json";
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(buffer, s_jsonOptions))
        {
            json.WriteStartObject();
            if (reason is not null) json.WriteString("Reason", reason);
            json.WriteString("Type", status >= 500 ? "Server" : "User");
            json.WriteString(messageField, message);
            json.WriteEndObject();
        }
        response.ContentLength = buffer.WrittenCount;
        return response.Body.WriteAsync(buffer.WrittenMemory).AsTask();
    }

    // Caller text quoted in an error message is cut short: it is echoed, not trusted.
    private static string Shorten(string text) => text.Length <= 256 ? text : text[..256] + "...";

    // A function: either kind of handler, and its reserved concurrency.
    private sealed class FunctionEntry(LambdaFunctionHandler? handler, LambdaStreamingFunctionHandler? streamingHandler, int? concurrencyLimit)
    {
        public readonly LambdaFunctionHandler? Handler = handler;
        public readonly LambdaStreamingFunctionHandler? StreamingHandler = streamingHandler;
        public readonly int? ConcurrencyLimit = concurrencyLimit;
        public int Running; // synchronous invocations running now, counted only under a limit
    }

    private sealed record InvocationCall(FunctionName Name, string? Qualifier, string? LogType, string? ClientContext);

    private enum FaultOutcome { None, Answered, Truncate }
}
