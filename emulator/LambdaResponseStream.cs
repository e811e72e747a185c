using System;
using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace SigV4Lite.Emulator;

/// <summary>
/// A function that streams its response (Node's <c>awslambda.streamifyResponse</c>): it writes chunks to
/// <paramref name="response"/> over time and returns when done. An exception after some chunks is a function error in
/// the middle of the stream: the caller gets the chunks, then an <c>InvokeComplete</c> event with its
/// <c>ErrorCode</c>. The token is cancelled when the caller goes away (its writes then fail too) or the emulator stops.
/// </summary>
public delegate ValueTask LambdaStreamingFunctionHandler(LambdaInvocation invocation, LambdaResponseStream response, CancellationToken cancellationToken);

/// <summary>
/// Where a streaming function writes its response. Each <see cref="WriteAsync(ReadOnlyMemory{byte}, CancellationToken)"/>
/// is sent at once as <c>PayloadChunk</c> events (one per <see cref="MaxChunkLength"/> bytes). A write waits while the
/// caller is not reading (back-pressure), and fails with <see cref="OperationCanceledException"/> once the caller has
/// closed the connection.
/// </summary>
public sealed class LambdaResponseStream
{
    /// <summary>The most payload bytes one <c>PayloadChunk</c> event carries: 1 MiB.</summary>
    public const int MaxChunkLength = 1024 * 1024;

    private static readonly EventStreamHeader[] s_chunkHeaders =
        [new(":event-type", "PayloadChunk"), new(":content-type", "application/octet-stream"), new(":message-type", "event")];

    private readonly PipeWriter? _writer;               // streaming to the caller
    private readonly ArrayBufferWriter<byte>? _gathered; // gathered for Invoke
    private readonly CancellationToken _callerGone;
    private long _bytesWritten;
    private int _chunksWritten;
    private int _busy;

    private LambdaResponseStream(PipeWriter? writer, ArrayBufferWriter<byte>? gathered, CancellationToken callerGone)
    {
        _writer = writer;
        _gathered = gathered;
        _callerGone = callerGone;
    }

    internal static LambdaResponseStream Streaming(PipeWriter writer, CancellationToken callerGone) => new(writer, null, callerGone);

    internal static LambdaResponseStream Gathering(CancellationToken callerGone) => new(null, new ArrayBufferWriter<byte>(), callerGone);

    /// <summary>The payload bytes written so far.</summary>
    public long BytesWritten => Volatile.Read(ref _bytesWritten);

    /// <summary>The <c>PayloadChunk</c> events sent so far (the writes, for a buffered Invoke).</summary>
    public int ChunksWritten => Volatile.Read(ref _chunksWritten);

    internal bool Completed { get; set; }

    /// <summary>Sends <paramref name="chunk"/> now (an empty chunk sends nothing) and returns once it is handed to the
    /// connection.</summary>
    /// <exception cref="OperationCanceledException">The caller closed the connection, or the token was cancelled.</exception>
    /// <exception cref="InvalidOperationException">The function has returned, or another write is under way.</exception>
    public async ValueTask WriteAsync(ReadOnlyMemory<byte> chunk, CancellationToken cancellationToken = default)
    {
        if (Completed) throw new InvalidOperationException("The function has returned: its response stream is closed.");
        if (Interlocked.Exchange(ref _busy, 1) == 1) throw new InvalidOperationException("Write the response one chunk at a time: a write is under way.");
        try
        {
            for (int at = 0; at < chunk.Length; at += MaxChunkLength)
                await WriteEventAsync(chunk.Slice(at, Math.Min(MaxChunkLength, chunk.Length - at)), cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Volatile.Write(ref _busy, 0);
        }
    }

    /// <summary>Sends <paramref name="text"/> as UTF-8.</summary>
    /// <exception cref="OperationCanceledException">The caller closed the connection, or the token was cancelled.</exception>
    public ValueTask WriteAsync(string text, CancellationToken cancellationToken = default) =>
        WriteAsync(Encoding.UTF8.GetBytes(text ?? throw new ArgumentNullException(nameof(text))), cancellationToken);

    /// <inheritdoc/>
    public override string ToString() => $"LambdaResponseStream {{ ChunksWritten = {ChunksWritten}, BytesWritten = {BytesWritten} }}";

    private async ValueTask WriteEventAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        _callerGone.ThrowIfCancellationRequested();
        cancellationToken.ThrowIfCancellationRequested();
        if (_gathered is not null)
        {
            _gathered.Write(payload.Span);
        }
        else
        {
            int length = EventStreamEncoder.GetEncodedLength(s_chunkHeaders, payload.Length);
            _writer!.Advance(EventStreamEncoder.Encode(s_chunkHeaders, payload.Span, _writer.GetSpan(length)));
            // Waits while Kestrel's response buffer is full: the caller reads no faster than it takes chunks.
            var flushed = await _writer.FlushAsync(cancellationToken).ConfigureAwait(false);
            if (flushed.IsCompleted || flushed.IsCanceled) _callerGone.ThrowIfCancellationRequested();
            if (flushed.IsCompleted) throw new OperationCanceledException("The caller closed the connection.", _callerGone);
        }
        Interlocked.Add(ref _bytesWritten, payload.Length);
        Interlocked.Increment(ref _chunksWritten);
    }

    internal byte[] ToArray() => _gathered!.WrittenSpan.ToArray();
}
