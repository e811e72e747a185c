using System.Threading;

namespace SigV4Lite.Emulator;

/// <summary>What the emulator has served: every HTTP request counts, whatever it was answered. Thread-safe.</summary>
public sealed class EmulatorCounters
{
    private long _requests;
    private long _signatureFailures;
    private long _disconnects;
    private int _inFlight;
    private int _maxInFlight;

    internal EmulatorCounters() { }

    /// <summary>Requests received since the start (or the last <see cref="Reset"/>).</summary>
    public long Requests => Volatile.Read(ref _requests);

    /// <summary>Requests being served now (received, not yet answered).</summary>
    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>The most requests that were being served at once since the start (or the last <see cref="Reset"/>).</summary>
    public int MaxInFlight => Volatile.Read(ref _maxInFlight);

    /// <summary>Requests refused because their signature was missing, malformed, wrong, expired or by an unknown key.</summary>
    public long SignatureFailures => Volatile.Read(ref _signatureFailures);

    /// <summary>Synchronous invocations whose caller closed the connection before the answer was complete: a timeout,
    /// a cancelled call, a stream the caller stopped reading.</summary>
    public long Disconnects => Volatile.Read(ref _disconnects);

    /// <summary>Sets <see cref="Requests"/>, <see cref="SignatureFailures"/> and <see cref="Disconnects"/> to zero and <see cref="MaxInFlight"/>
    /// to the requests in flight now.</summary>
    public void Reset()
    {
        Interlocked.Exchange(ref _requests, 0);
        Interlocked.Exchange(ref _signatureFailures, 0);
        Interlocked.Exchange(ref _disconnects, 0);
        Interlocked.Exchange(ref _maxInFlight, Volatile.Read(ref _inFlight));
    }

    /// <inheritdoc/>
    public override string ToString() =>
        $"EmulatorCounters {{ Requests = {Requests}, InFlight = {InFlight}, MaxInFlight = {MaxInFlight}, SignatureFailures = {SignatureFailures}, Disconnects = {Disconnects} }}";

    internal void RequestStarted()
    {
        Interlocked.Increment(ref _requests);
        int now = Interlocked.Increment(ref _inFlight);
        int max = Volatile.Read(ref _maxInFlight);
        while (now > max)
        {
            int seen = Interlocked.CompareExchange(ref _maxInFlight, now, max);
            if (seen == max) break;
            max = seen;
        }
    }

    internal void RequestEnded() => Interlocked.Decrement(ref _inFlight);

    internal void SignatureFailed() => Interlocked.Increment(ref _signatureFailures);

    internal void ClientDisconnected() => Interlocked.Increment(ref _disconnects);
}
