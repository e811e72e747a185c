using System;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace SigV4Lite.Emulator;

/// <summary>
/// A function of the emulator: takes one invocation and returns the response payload (JSON, as Lambda returns it;
/// null answers <c>null</c>). It may log, wait or throw: an exception becomes Lambda's function error, HTTP 200 with
/// <c>X-Amz-Function-Error: Unhandled</c>, or <c>Handled</c> for a <see cref="LambdaHandledErrorException"/>.
/// The token is cancelled when the caller of a synchronous invocation gives up (its request is aborted: a timeout,
/// a cancelled call, a closed connection) and when the emulator stops; an <c>Event</c> invocation's token only when
/// the emulator stops.
/// </summary>
public delegate ValueTask<byte[]> LambdaFunctionHandler(LambdaInvocation invocation, CancellationToken cancellationToken);

/// <summary>One invocation as a function sees it.</summary>
public sealed class LambdaInvocation
{
    private const int LogTailBytes = 4096;

    private StringBuilder? _log;

    internal LambdaInvocation(string functionName, string? qualifier, ReadOnlyMemory<byte> payload, string invocationType,
        string? clientContext, string requestId)
    {
        FunctionName = functionName;
        Qualifier = qualifier;
        Payload = payload;
        InvocationType = invocationType;
        ClientContext = clientContext;
        RequestId = requestId;
    }

    /// <summary>The function's bare name, whichever form the caller used (name, name:qualifier, ARN, partial ARN).</summary>
    public string FunctionName { get; }

    /// <summary>The qualifier asked for (in the name or as <c>?Qualifier=</c>), such as <c>$LATEST</c>, a version or an
    /// alias; null when none was given.</summary>
    public string? Qualifier { get; }

    /// <summary>The request body as sent (JSON, or empty).</summary>
    public ReadOnlyMemory<byte> Payload { get; }

    /// <summary><c>RequestResponse</c> or <c>Event</c>.</summary>
    public string InvocationType { get; }

    /// <summary>The JSON decoded from the <c>X-Amz-Client-Context</c> header, or null when none was sent.</summary>
    public string? ClientContext { get; }

    /// <summary>The request id, also sent back as <c>x-amzn-RequestId</c>.</summary>
    public string RequestId { get; }

    /// <summary>Writes a line to the function's log: the caller gets the last 4 KB of it, base64, in
    /// <c>X-Amz-Log-Result</c> when it asks with <c>X-Amz-Log-Type: Tail</c>.</summary>
    public void Log(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        var log = _log ?? Interlocked.CompareExchange(ref _log, new StringBuilder(), null) ?? _log;
        lock (log) log.Append(line).Append('\n');
    }

    /// <inheritdoc/>
    public override string ToString() =>
        $"LambdaInvocation {{ FunctionName = {FunctionName}, Qualifier = {Qualifier}, InvocationType = {InvocationType}, RequestId = {RequestId}, Payload = {Payload.Length} bytes }}";

    // The last 4 KB of the log as UTF-8, base64: Lambda cuts bytes, not characters.
    internal string LogTailBase64()
    {
        var log = Volatile.Read(ref _log);
        if (log is null) return "";
        string text;
        lock (log) text = log.ToString();
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        int start = Math.Max(0, bytes.Length - LogTailBytes);
        return Convert.ToBase64String(bytes, start, bytes.Length - start);
    }
}
