using System.Diagnostics.Tracing;
using System.Globalization;

namespace SigV4Lite.Bench;

/// <summary>
/// The garbage collections while it listens, from the runtime's own events: for each generation, how many and how
/// long the runtime was suspended for them (SuspendEEBegin to RestartEEEnd), so that a run's GC cost can be told
/// apart by kind (a gen0 or gen1 collection, a background gen2 or a blocking one).
/// </summary>
internal sealed class GcPauses : EventListener
{
    private readonly object _gate = new();
    private readonly Dictionary<string, (int Count, double Milliseconds)> _byKind = new();
    private string _current = "?";
    private DateTime _suspended;
    private bool _listening;

    public void Start() { lock (_gate) { _byKind.Clear(); _listening = true; } }

    public string Stop(int rounds)
    {
        lock (_gate)
        {
            _listening = false;
            return string.Join(", ", _byKind.OrderBy(k => k.Key).Select(k =>
                string.Create(CultureInfo.InvariantCulture, $"{k.Key} {k.Value.Count / (double)rounds:F2} a round, {k.Value.Milliseconds / rounds:F2} ms a round")));
        }
    }

    protected override void OnEventSourceCreated(EventSource source)
    {
        if (source.Name == "Microsoft-Windows-DotNETRuntime") EnableEvents(source, EventLevel.Informational, (EventKeywords)0x1); // GC
    }

    protected override void OnEventWritten(EventWrittenEventArgs e)
    {
        lock (_gate)
        {
            if (!_listening) return;
            switch (e.EventName)
            {
                case "GCStart_V2":
                    // Type: 0 blocking, 1 background, 2 a foreground GC during a background one.
                    uint depth = Convert.ToUInt32(e.Payload![1]), type = Convert.ToUInt32(e.Payload[3]);
                    _current = $"gen{depth}{(type == 1 ? " background" : depth == 2 ? " blocking" : "")}";
                    break;
                case "GCSuspendEEBegin_V1":
                    _suspended = e.TimeStamp;
                    break;
                case "GCRestartEEEnd_V1" when _suspended != default:
                    var kept = _byKind.GetValueOrDefault(_current);
                    _byKind[_current] = (kept.Count + 1, kept.Milliseconds + (e.TimeStamp - _suspended).TotalMilliseconds);
                    _suspended = default;
                    break;
            }
        }
    }
}
