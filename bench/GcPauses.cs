using System.Diagnostics.Tracing;
using System.Globalization;

namespace SigV4Lite.Bench;

/// <summary>
/// The garbage collections between <see cref="Start"/> and <see cref="Stop"/>, from the runtime's own events: for each
/// kind (gen0, gen1, a blocking gen2, a background gen2), how many started and how long the runtime was suspended for
/// them (SuspendEEBegin to RestartEEEnd, suspensions for a GC only). A suspension in which no GC starts is a background
/// gen2's later pause and counts as that. Events arrive late on the listener's own thread, so each is judged by its
/// time stamp, and <see cref="Stop"/> waits for one stamped after the window.
/// </summary>
internal sealed class GcPauses : EventListener
{
    private const string BackgroundGen2 = "gen2 background";
    private readonly object _gate = new();
    private readonly Dictionary<string, (int Count, double Milliseconds)> _byKind = new();
    private DateTime _from = DateTime.MaxValue, _until = DateTime.MaxValue;
    private DateTime _suspended;
    private string? _startedInSuspension;
    private DateTime _lastEvent;

    public void Start()
    {
        lock (_gate) { _byKind.Clear(); _from = DateTime.UtcNow; _until = DateTime.MaxValue; }
    }

    /// <summary>The window's collections and pauses per round, by kind.</summary>
    public string Stop(int rounds)
    {
        var until = DateTime.UtcNow;
        lock (_gate) _until = until;
        // A collection after the window: once its events are in, so are the window's.
        GC.Collect(0);
        for (int waited = 0; waited < 200; waited++)
        {
            lock (_gate) if (_lastEvent > until) break;
            Thread.Sleep(10);
        }
        lock (_gate)
            return string.Join(", ", _byKind.OrderBy(k => k.Key).Select(k =>
                string.Create(CultureInfo.InvariantCulture, $"{k.Key} {k.Value.Count / (double)rounds:F2} a round, paused {k.Value.Milliseconds / rounds:F2} ms a round")));
    }

    protected override void OnEventSourceCreated(EventSource source)
    {
        if (source.Name == "Microsoft-Windows-DotNETRuntime") EnableEvents(source, EventLevel.Informational, (EventKeywords)0x1); // GC
    }

    protected override void OnEventWritten(EventWrittenEventArgs e)
    {
        lock (_gate)
        {
            _lastEvent = e.TimeStamp.ToUniversalTime();
            bool inWindow = _lastEvent >= _from && _lastEvent <= _until;
            switch (e.EventName)
            {
                case "GCStart_V2":
                    // Depth: the generation collected; Type: 0 blocking, 1 background, 2 a blocking one during a background.
                    uint depth = Convert.ToUInt32(e.Payload![1]), type = Convert.ToUInt32(e.Payload[3]);
                    string kind = type == 1 ? BackgroundGen2 : $"gen{depth}{(depth == 2 ? " blocking" : "")}";
                    if (_suspended != default) _startedInSuspension = kind;
                    if (inWindow) Add(kind, count: 1, 0);
                    break;
                case "GCSuspendEEBegin_V1":
                    // Reason: 1 for a GC, 6 to prepare one; others (a debugger, a rejit, the tiered compiler) are not the GC's.
                    uint reason = Convert.ToUInt32(e.Payload![0]);
                    _suspended = reason is 1 or 6 ? _lastEvent : default;
                    _startedInSuspension = null;
                    break;
                case "GCRestartEEEnd_V1" when _suspended != default:
                    if (inWindow) Add(_startedInSuspension ?? BackgroundGen2, count: 0, (_lastEvent - _suspended).TotalMilliseconds);
                    _suspended = default;
                    break;
            }
        }
    }

    private void Add(string kind, int count, double milliseconds)
    {
        var kept = _byKind.GetValueOrDefault(kind);
        _byKind[kind] = (kept.Count + count, kept.Milliseconds + milliseconds);
    }
}
