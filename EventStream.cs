// EventStream.cs: AWS event streams (application/vnd.amazon.eventstream), read and written. BCL only; needs no other
// file of the library, so it can be copied alone into any net8.0+ project.
//
//   await using var reader = new EventStreamReader(responseStream);
//   await foreach (EventStreamMessage message in reader.ReadAllAsync(cancellationToken))
//   {
//       message.EnsureEvent();                                  // an exception or error message is thrown
//       if (message.Headers.TryGetValue(":event-type", out var type) && type.StringEquals("PayloadChunk")) ...
//   }
//
// The same framing carries Lambda InvokeWithResponseStream, Bedrock ConverseStream, S3 SelectObjectContent, Kinesis
// SubscribeToShard and Transcribe streaming. A message is a 12-byte prelude (total length, headers length, both
// u32 big-endian, and the CRC32 of those 8 bytes), the headers, the payload, and the CRC32 of everything before it.
//
// An HTTP answer's event stream, read as its messages arrive (the connection closed at once if the loop ends early):
//
//   await foreach (EventStreamMessage message in response.ReadEventStreamAsync(cancellationToken)) ...
//
// The file reads top-down: the limits and the message a caller gets (its headers and their typed values), the
// exceptions, the reader, the encoder, the HttpResponseMessage helpers, then the CRC32 they share. Every type
// compiles as internal too.
#nullable enable

using System;
using System.Buffers;
using System.Buffers.Binary;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Net.Http;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;
using System.Threading;
using System.Threading.Tasks;

namespace SigV4Lite;

/// <summary>The type of an event-stream header value, as its type byte on the wire.</summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
enum EventStreamHeaderType : byte
{
    /// <summary>The boolean true (no value bytes).</summary>
    BoolTrue = 0,
    /// <summary>The boolean false (no value bytes).</summary>
    BoolFalse = 1,
    /// <summary>A signed 8-bit integer.</summary>
    Byte = 2,
    /// <summary>A signed 16-bit integer, big-endian.</summary>
    Int16 = 3,
    /// <summary>A signed 32-bit integer, big-endian.</summary>
    Int32 = 4,
    /// <summary>A signed 64-bit integer, big-endian.</summary>
    Int64 = 5,
    /// <summary>Bytes, after a u16 big-endian length.</summary>
    ByteArray = 6,
    /// <summary>UTF-8 text, after a u16 big-endian length.</summary>
    String = 7,
    /// <summary>Milliseconds since the Unix epoch, a signed 64-bit integer, big-endian.</summary>
    Timestamp = 8,
    /// <summary>A UUID, 16 bytes in network order.</summary>
    Uuid = 9,
}

/// <summary>
/// One header value of an event-stream message, typed. A value read from a stream points into the message's bytes:
/// reading it copies nothing, except <see cref="AsString"/> and <see cref="ToString"/>, which make a string.
/// </summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
readonly struct EventStreamHeaderValue : IEquatable<EventStreamHeaderValue>
{
    private readonly long _number;               // Byte, Int16, Int32, Int64, Timestamp
    private readonly ReadOnlyMemory<byte> _bytes; // ByteArray, String (as read), Uuid
    private readonly string? _text;              // String (as created)

    private EventStreamHeaderValue(EventStreamHeaderType type, long number = 0, ReadOnlyMemory<byte> bytes = default, string? text = null)
    {
        Type = type;
        _number = number;
        _bytes = bytes;
        _text = text;
    }

    /// <summary>The value's type.</summary>
    public EventStreamHeaderType Type { get; }

    /// <summary>A boolean value.</summary>
    public static EventStreamHeaderValue FromBoolean(bool value) => new(value ? EventStreamHeaderType.BoolTrue : EventStreamHeaderType.BoolFalse);

    /// <summary>A signed byte (type 2).</summary>
    public static EventStreamHeaderValue FromSByte(sbyte value) => new(EventStreamHeaderType.Byte, value);

    /// <summary>A 16-bit integer (type 3).</summary>
    public static EventStreamHeaderValue FromInt16(short value) => new(EventStreamHeaderType.Int16, value);

    /// <summary>A 32-bit integer (type 4).</summary>
    public static EventStreamHeaderValue FromInt32(int value) => new(EventStreamHeaderType.Int32, value);

    /// <summary>A 64-bit integer (type 5).</summary>
    public static EventStreamHeaderValue FromInt64(long value) => new(EventStreamHeaderType.Int64, value);

    /// <summary>Bytes (type 6), at most <see cref="EventStreamMessage.MaxHeaderValueLength"/>; not copied.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is longer than that.</exception>
    public static EventStreamHeaderValue FromBytes(ReadOnlyMemory<byte> value)
    {
        if (value.Length > EventStreamMessage.MaxHeaderValueLength)
            throw new ArgumentOutOfRangeException(nameof(value), value.Length, $"A header value holds at most {EventStreamMessage.MaxHeaderValueLength} bytes.");
        return new(EventStreamHeaderType.ByteArray, bytes: value);
    }

    /// <summary>Text (type 7), at most <see cref="EventStreamMessage.MaxHeaderValueLength"/> bytes of UTF-8.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The text is longer than that.</exception>
    public static EventStreamHeaderValue FromString(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        int length = Encoding.UTF8.GetByteCount(value);
        if (length > EventStreamMessage.MaxHeaderValueLength)
            throw new ArgumentOutOfRangeException(nameof(value), length, $"A header value holds at most {EventStreamMessage.MaxHeaderValueLength} bytes of UTF-8.");
        return new(EventStreamHeaderType.String, text: value);
    }

    /// <summary>A timestamp (type 8), kept to the millisecond.</summary>
    public static EventStreamHeaderValue FromTimestamp(DateTimeOffset value) => new(EventStreamHeaderType.Timestamp, value.ToUnixTimeMilliseconds());

    /// <summary>A UUID (type 9).</summary>
    public static EventStreamHeaderValue FromUuid(Guid value)
    {
        var bytes = new byte[16];
        value.TryWriteBytes(bytes, bigEndian: true, out _);
        return new(EventStreamHeaderType.Uuid, bytes: bytes);
    }

    internal static EventStreamHeaderValue Read(EventStreamHeaderType type, ReadOnlyMemory<byte> value) => type switch
    {
        EventStreamHeaderType.BoolTrue or EventStreamHeaderType.BoolFalse => new(type),
        EventStreamHeaderType.Byte => new(type, (sbyte)value.Span[0]),
        EventStreamHeaderType.Int16 => new(type, BinaryPrimitives.ReadInt16BigEndian(value.Span)),
        EventStreamHeaderType.Int32 => new(type, BinaryPrimitives.ReadInt32BigEndian(value.Span)),
        EventStreamHeaderType.Int64 or EventStreamHeaderType.Timestamp => new(type, BinaryPrimitives.ReadInt64BigEndian(value.Span)),
        _ => new(type, bytes: value),
    };

    /// <summary>The boolean.</summary>
    /// <exception cref="InvalidOperationException">The value is not a boolean.</exception>
    public bool AsBoolean() => Type switch
    {
        EventStreamHeaderType.BoolTrue => true,
        EventStreamHeaderType.BoolFalse => false,
        _ => throw WrongType("a boolean"),
    };

    /// <summary>The signed byte (type 2).</summary>
    /// <exception cref="InvalidOperationException">The value is of another type.</exception>
    public sbyte AsSByte() => Type == EventStreamHeaderType.Byte ? (sbyte)_number : throw WrongType("a byte");

    /// <summary>The 16-bit integer; a byte value widens.</summary>
    /// <exception cref="InvalidOperationException">The value is of another type.</exception>
    public short AsInt16() => Type is EventStreamHeaderType.Byte or EventStreamHeaderType.Int16 ? (short)_number : throw WrongType("a 16-bit integer");

    /// <summary>The 32-bit integer; a byte or 16-bit value widens.</summary>
    /// <exception cref="InvalidOperationException">The value is of another type.</exception>
    public int AsInt32() => Type is EventStreamHeaderType.Byte or EventStreamHeaderType.Int16 or EventStreamHeaderType.Int32
        ? (int)_number : throw WrongType("a 32-bit integer");

    /// <summary>The 64-bit integer; any integer widens, and a timestamp gives its milliseconds since the Unix epoch.</summary>
    /// <exception cref="InvalidOperationException">The value is not an integer or a timestamp.</exception>
    public long AsInt64() => Type is >= EventStreamHeaderType.Byte and <= EventStreamHeaderType.Int64 or EventStreamHeaderType.Timestamp
        ? _number : throw WrongType("a 64-bit integer");

    /// <summary>The bytes of a byte-array, string (UTF-8) or UUID value, without a copy.</summary>
    /// <exception cref="InvalidOperationException">The value is of another type.</exception>
    public ReadOnlyMemory<byte> AsBytes() => Type switch
    {
        EventStreamHeaderType.String when _text is not null => Encoding.UTF8.GetBytes(_text),
        EventStreamHeaderType.ByteArray or EventStreamHeaderType.String or EventStreamHeaderType.Uuid => _bytes,
        _ => throw WrongType("bytes"),
    };

    /// <summary>The text of a string value (a new string).</summary>
    /// <exception cref="InvalidOperationException">The value is not a string.</exception>
    public string AsString() => Type == EventStreamHeaderType.String
        ? _text ?? Encoding.UTF8.GetString(_bytes.Span) : throw WrongType("a string");

    /// <summary>The timestamp.</summary>
    /// <exception cref="InvalidOperationException">The value is not a timestamp, or one outside the years 1 to 9999.</exception>
    public DateTimeOffset AsTimestamp()
    {
        if (Type != EventStreamHeaderType.Timestamp) throw WrongType("a timestamp");
        if (_number is < -62_135_596_800_000 or > 253_402_300_799_999)
            throw new InvalidOperationException($"The timestamp header value {_number} ms since the Unix epoch is outside the years 1 to 9999.");
        return DateTimeOffset.FromUnixTimeMilliseconds(_number);
    }

    /// <summary>The UUID.</summary>
    /// <exception cref="InvalidOperationException">The value is not a UUID.</exception>
    public Guid AsUuid() => Type == EventStreamHeaderType.Uuid ? new Guid(_bytes.Span, bigEndian: true) : throw WrongType("a UUID");

    /// <summary>Whether this is a string value equal (ordinal) to <paramref name="text"/>; makes no string.</summary>
    public bool StringEquals(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (Type != EventStreamHeaderType.String) return false;
        return _text is not null ? _text == text : Utf8Text.Equals(_bytes.Span, text);
    }

    /// <summary>Whether this is a string value whose UTF-8 bytes are <paramref name="utf8"/>.</summary>
    public bool StringEquals(ReadOnlySpan<byte> utf8)
    {
        if (Type != EventStreamHeaderType.String) return false;
        return _text is not null ? Utf8Text.Equals(utf8, _text) : _bytes.Span.SequenceEqual(utf8);
    }

    /// <inheritdoc/>
    public bool Equals(EventStreamHeaderValue other)
    {
        if (Type != other.Type) return false;
        return Type switch
        {
            EventStreamHeaderType.String => _text is not null ? other.StringEquals(_text) : other.StringEquals(_bytes.Span),
            EventStreamHeaderType.ByteArray or EventStreamHeaderType.Uuid => _bytes.Span.SequenceEqual(other._bytes.Span),
            _ => _number == other._number,
        };
    }

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is EventStreamHeaderValue other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Type, _number, Type is EventStreamHeaderType.String or EventStreamHeaderType.ByteArray or EventStreamHeaderType.Uuid ? ValueLength : 0);

    /// <summary>Whether two values are of the same type and equal.</summary>
    public static bool operator ==(EventStreamHeaderValue left, EventStreamHeaderValue right) => left.Equals(right);

    /// <summary>Whether two values differ in type or value.</summary>
    public static bool operator !=(EventStreamHeaderValue left, EventStreamHeaderValue right) => !left.Equals(right);

    /// <summary>The value as text: a string as is, bytes in base64, numbers in invariant culture, a timestamp in ISO 8601.</summary>
    public override string ToString() => Type switch
    {
        EventStreamHeaderType.BoolTrue => "true",
        EventStreamHeaderType.BoolFalse => "false",
        EventStreamHeaderType.String => AsString(),
        EventStreamHeaderType.ByteArray => Convert.ToBase64String(_bytes.Span),
        EventStreamHeaderType.Uuid => AsUuid().ToString(),
        EventStreamHeaderType.Timestamp => _number is < -62_135_596_800_000 or > 253_402_300_799_999
            ? _number.ToString(CultureInfo.InvariantCulture) + " ms" : AsTimestamp().ToString("O", CultureInfo.InvariantCulture),
        _ => _number.ToString(CultureInfo.InvariantCulture),
    };

    // The length of the value as encoded, without its type byte (and with the u16 length of bytes and strings).
    internal int EncodedLength => Type switch
    {
        EventStreamHeaderType.BoolTrue or EventStreamHeaderType.BoolFalse => 0,
        EventStreamHeaderType.Byte => 1,
        EventStreamHeaderType.Int16 => 2,
        EventStreamHeaderType.Int32 => 4,
        EventStreamHeaderType.Int64 or EventStreamHeaderType.Timestamp => 8,
        EventStreamHeaderType.Uuid => 16,
        _ => 2 + ValueLength,
    };

    private int ValueLength => _text is not null ? Encoding.UTF8.GetByteCount(_text) : _bytes.Length;

    internal int Write(Span<byte> destination)
    {
        switch (Type)
        {
            case EventStreamHeaderType.BoolTrue or EventStreamHeaderType.BoolFalse:
                return 0;
            case EventStreamHeaderType.Byte:
                destination[0] = (byte)(sbyte)_number;
                return 1;
            case EventStreamHeaderType.Int16:
                BinaryPrimitives.WriteInt16BigEndian(destination, (short)_number);
                return 2;
            case EventStreamHeaderType.Int32:
                BinaryPrimitives.WriteInt32BigEndian(destination, (int)_number);
                return 4;
            case EventStreamHeaderType.Int64 or EventStreamHeaderType.Timestamp:
                BinaryPrimitives.WriteInt64BigEndian(destination, _number);
                return 8;
            case EventStreamHeaderType.Uuid:
                _bytes.Span.CopyTo(destination);
                return 16;
            default:
                int length = _text is not null ? Encoding.UTF8.GetBytes(_text, destination[2..]) : Utf8Text.Copy(_bytes.Span, destination[2..]);
                BinaryPrimitives.WriteUInt16BigEndian(destination, (ushort)length);
                return 2 + length;
        }
    }

    private InvalidOperationException WrongType(string wanted) =>
        new($"The header value is {Describe(Type)}, not {wanted}; check Type before reading it.");

    internal static string Describe(EventStreamHeaderType type) => type switch
    {
        EventStreamHeaderType.BoolTrue or EventStreamHeaderType.BoolFalse => "a boolean",
        EventStreamHeaderType.Byte => "a byte",
        EventStreamHeaderType.Int16 => "a 16-bit integer",
        EventStreamHeaderType.Int32 => "a 32-bit integer",
        EventStreamHeaderType.Int64 => "a 64-bit integer",
        EventStreamHeaderType.ByteArray => "bytes",
        EventStreamHeaderType.String => "a string",
        EventStreamHeaderType.Timestamp => "a timestamp",
        _ => "a UUID",
    };
}

/// <summary>One header of an event-stream message: a name (1 to 255 bytes of UTF-8) and a typed value.</summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
readonly struct EventStreamHeader
{
    private readonly string? _name;
    private readonly ReadOnlyMemory<byte> _nameUtf8;

    /// <summary>A header to encode.</summary>
    /// <exception cref="ArgumentException">The name is empty or longer than 255 bytes of UTF-8.</exception>
    public EventStreamHeader(string name, EventStreamHeaderValue value)
    {
        ArgumentNullException.ThrowIfNull(name);
        int length = Encoding.UTF8.GetByteCount(name);
        if (length is 0 or > EventStreamMessage.MaxHeaderNameLength)
            throw new ArgumentException($"A header name is 1 to {EventStreamMessage.MaxHeaderNameLength} bytes of UTF-8; '{Utf8Text.Clip(name)}' is {length}.", nameof(name));
        _name = name;
        Value = value;
    }

    /// <summary>A string header to encode, such as <c>(":event-type", "PayloadChunk")</c>.</summary>
    /// <exception cref="ArgumentException">The name is empty or longer than 255 bytes of UTF-8.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The value is longer than <see cref="EventStreamMessage.MaxHeaderValueLength"/> bytes.</exception>
    public EventStreamHeader(string name, string value) : this(name, EventStreamHeaderValue.FromString(value)) { }

    internal EventStreamHeader(ReadOnlyMemory<byte> nameUtf8, EventStreamHeaderValue value)
    {
        _nameUtf8 = nameUtf8;
        Value = value;
    }

    /// <summary>The name (a new string when the header was read from a stream).</summary>
    public string Name => _name ?? Encoding.UTF8.GetString(_nameUtf8.Span);

    /// <summary>The value.</summary>
    public EventStreamHeaderValue Value { get; }

    /// <summary>Whether the name is <paramref name="name"/> (ordinal); makes no string.</summary>
    public bool NameEquals(string name) => _name is not null ? _name == name : Utf8Text.Equals(_nameUtf8.Span, name);

    /// <summary>Whether the name's UTF-8 bytes are <paramref name="utf8Name"/>.</summary>
    public bool NameEquals(ReadOnlySpan<byte> utf8Name) => _name is not null ? Utf8Text.Equals(utf8Name, _name) : _nameUtf8.Span.SequenceEqual(utf8Name);

    /// <summary><c>name: value</c>.</summary>
    public override string ToString() => Name + ": " + Value.ToString();

    internal int EncodedLength => 1 + NameLength + 1 + Value.EncodedLength;

    private int NameLength => _name is not null ? Encoding.UTF8.GetByteCount(_name) : _nameUtf8.Length;

    internal int Write(Span<byte> destination)
    {
        int nameLength = _name is not null ? Encoding.UTF8.GetBytes(_name, destination[1..]) : Utf8Text.Copy(_nameUtf8.Span, destination[1..]);
        destination[0] = (byte)nameLength;
        destination[1 + nameLength] = (byte)Value.Type;
        return 2 + nameLength + Value.Write(destination[(2 + nameLength)..]);
    }
}

/// <summary>
/// The headers of a message read from a stream, in their order on the wire (already checked when the message was
/// read). Looking one up walks them: a message has few. A name may repeat; lookups find the first.
/// </summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
readonly struct EventStreamHeaders : IReadOnlyCollection<EventStreamHeader>
{
    private readonly ReadOnlyMemory<byte> _encoded;

    internal EventStreamHeaders(ReadOnlyMemory<byte> encoded) => _encoded = encoded;

    /// <summary>The headers as encoded on the wire.</summary>
    public ReadOnlyMemory<byte> Encoded => _encoded;

    /// <summary>How many headers there are.</summary>
    public int Count
    {
        get
        {
            int count = 0;
            foreach (var _ in this) count++;
            return count;
        }
    }

    /// <summary>Finds the first header named <paramref name="name"/> (ordinal).</summary>
    public bool TryGetValue(string name, out EventStreamHeaderValue value)
    {
        ArgumentNullException.ThrowIfNull(name);
        return TryFind(name, default, out value);
    }

    /// <summary>Finds the first header whose name's UTF-8 bytes are <paramref name="utf8Name"/>, such as <c>":event-type"u8</c>.</summary>
    public bool TryGetValue(ReadOnlySpan<byte> utf8Name, out EventStreamHeaderValue value) => TryFind(null, utf8Name, out value);

    // By the name as a string when there is one, else by its UTF-8 bytes.
    private bool TryFind(string? name, ReadOnlySpan<byte> utf8Name, out EventStreamHeaderValue value)
    {
        foreach (var header in this)
            if (name is not null ? header.NameEquals(name) : header.NameEquals(utf8Name))
            {
                value = header.Value;
                return true;
            }
        value = default;
        return false;
    }

    /// <summary>The text of the string header named <paramref name="name"/>, or null when there is none.</summary>
    /// <exception cref="InvalidOperationException">The header is there but not a string.</exception>
    public string? GetString(string name) => TryGetValue(name, out var value) ? value.AsString() : null;

    /// <summary>Enumerates the headers without allocating.</summary>
    public Enumerator GetEnumerator() => new(_encoded);

    IEnumerator<EventStreamHeader> IEnumerable<EventStreamHeader>.GetEnumerator() => GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>Every header, <c>name: value</c>, one per line.</summary>
    public override string ToString()
    {
        var text = new StringBuilder();
        foreach (var header in this) text.Append(header.ToString()).Append('\n');
        return text.ToString();
    }

    /// <summary>Walks the encoded headers.</summary>
    public struct Enumerator : IEnumerator<EventStreamHeader>
    {
        private readonly ReadOnlyMemory<byte> _encoded;
        private int _next;

        internal Enumerator(ReadOnlyMemory<byte> encoded)
        {
            _encoded = encoded;
            _next = 0;
            Current = default;
        }

        /// <summary>The header at the enumerator's position.</summary>
        public EventStreamHeader Current { get; private set; }

        readonly object IEnumerator.Current => Current;

        /// <summary>Moves to the next header.</summary>
        public bool MoveNext()
        {
            if (_next >= _encoded.Length) return false;
            // The headers were validated when the message was read: the lengths are known to fit.
            var span = _encoded.Span;
            int nameLength = span[_next];
            var name = _encoded.Slice(_next + 1, nameLength);
            var type = (EventStreamHeaderType)span[_next + 1 + nameLength];
            int at = _next + 2 + nameLength;
            int length = EventStreamFraming.ValueLength(type, span[at..], out int lengthPrefix);
            Current = new EventStreamHeader(name, EventStreamHeaderValue.Read(type, _encoded.Slice(at + lengthPrefix, length)));
            _next = at + lengthPrefix + length;
            return true;
        }

        /// <summary>Back to before the first header.</summary>
        public void Reset()
        {
            _next = 0;
            Current = default;
        }

        /// <summary>Nothing to release.</summary>
        public readonly void Dispose() { }
    }
}

/// <summary>
/// One event-stream message: its headers and its payload. A message read from a stream owns one array holding both,
/// made for it: keep it as long as you like. The well-known headers have properties.
/// </summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
readonly struct EventStreamMessage
{
    /// <summary>The largest message, prelude and CRC included: 16 MiB.</summary>
    public const int MaxLength = 16 * 1024 * 1024;

    /// <summary>The most header bytes in one message: 128 KiB.</summary>
    public const int MaxHeadersLength = 128 * 1024;

    /// <summary>The longest header name: 255 bytes of UTF-8.</summary>
    public const int MaxHeaderNameLength = 255;

    /// <summary>The longest byte-array or string header value this library writes: 32,767 bytes (it reads up to 65,535).</summary>
    public const int MaxHeaderValueLength = short.MaxValue;

    /// <summary>The prelude (12 bytes) and the message CRC (4 bytes): the length of a message with no header and no payload.</summary>
    public const int MinLength = EventStreamFraming.PreludeLength + EventStreamFraming.CrcLength;

    private readonly byte[]? _body; // headers then payload
    private readonly int _headersLength;

    internal EventStreamMessage(byte[] body, int headersLength)
    {
        _body = body;
        _headersLength = headersLength;
    }

    /// <summary>The headers.</summary>
    public EventStreamHeaders Headers => new(_body.AsMemory(0, _headersLength));

    /// <summary>The payload (raw bytes; JSON for most AWS events).</summary>
    public ReadOnlyMemory<byte> Payload => _body is null ? default : _body.AsMemory(_headersLength);

    /// <summary>The <c>:message-type</c> header: <c>event</c>, <c>exception</c> or <c>error</c>; null when absent.
    /// Makes no string for those three.</summary>
    public string? MessageType
    {
        get
        {
            if (!Headers.TryGetValue(":message-type"u8, out var value) || value.Type != EventStreamHeaderType.String) return null;
            if (value.StringEquals("event"u8)) return "event";
            if (value.StringEquals("exception"u8)) return "exception";
            return value.StringEquals("error"u8) ? "error" : value.AsString();
        }
    }

    /// <summary>The <c>:event-type</c> header (a new string), such as <c>PayloadChunk</c>; null when absent.</summary>
    public string? EventType => StringHeader(":event-type"u8);

    /// <summary>The <c>:exception-type</c> header of an exception message, such as <c>ThrottlingException</c>; null when absent.</summary>
    public string? ExceptionType => StringHeader(":exception-type"u8);

    /// <summary>The <c>:error-code</c> header of an error message; null when absent.</summary>
    public string? ErrorCode => StringHeader(":error-code"u8);

    /// <summary>The <c>:error-message</c> header of an error message; null when absent.</summary>
    public string? ErrorMessage => StringHeader(":error-message"u8);

    /// <summary>The <c>:content-type</c> header, such as <c>application/json</c>; null when absent.</summary>
    public string? ContentType => StringHeader(":content-type"u8);

    /// <summary>Whether this is an event (<c>:message-type</c> <c>event</c>, or no <c>:message-type</c>) whose
    /// <c>:event-type</c> is <paramref name="eventType"/>. Makes no string.</summary>
    public bool IsEvent(string eventType)
    {
        ArgumentNullException.ThrowIfNull(eventType);
        return IsEventMessage && Headers.TryGetValue(":event-type"u8, out var value) && value.StringEquals(eventType);
    }

    /// <summary>Throws when this message is not an event: an <c>exception</c> or <c>error</c> message (or any other
    /// <c>:message-type</c>) is the service telling of a failure in the middle of the stream.</summary>
    /// <exception cref="EventStreamErrorException">The message is an exception or an error.</exception>
    public void EnsureEvent()
    {
        if (!IsEventMessage) throw EventStreamErrorException.From(this);
    }

    /// <summary>The message encoded, as it was on the wire.</summary>
    public byte[] Encode() => EventStreamEncoder.Reencode(Headers, Payload.Span);

    /// <summary>A summary: the message type, the event, exception or error type, and the payload's length.</summary>
    public override string ToString() =>
        $"EventStreamMessage {{ MessageType = {MessageType ?? "(none)"}, {MessageType switch { "exception" => "ExceptionType = " + ExceptionType, "error" => "ErrorCode = " + ErrorCode, _ => "EventType = " + EventType }}, Payload = {Payload.Length} bytes }}";

    private bool IsEventMessage => !Headers.TryGetValue(":message-type"u8, out var type) || type.StringEquals("event"u8);

    private string? StringHeader(ReadOnlySpan<byte> name) =>
        Headers.TryGetValue(name, out var value) && value.Type == EventStreamHeaderType.String ? value.AsString() : null;
}

/// <summary>What was wrong with an event stream.</summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
enum EventStreamErrorKind
{
    /// <summary>The CRC32 of a prelude (the total and headers lengths) does not match: the bytes were damaged.</summary>
    PreludeChecksumMismatch,
    /// <summary>The CRC32 at the end of a message does not match the message: the bytes were damaged.</summary>
    MessageChecksumMismatch,
    /// <summary>A message's total length is below 16 bytes or above <see cref="EventStreamMessage.MaxLength"/>.</summary>
    InvalidMessageLength,
    /// <summary>A message's headers length is above <see cref="EventStreamMessage.MaxHeadersLength"/> or does not fit in the message.</summary>
    InvalidHeadersLength,
    /// <summary>A header is malformed: an empty or overlong name, an unknown value type, a value running past the
    /// headers, text that is not UTF-8.</summary>
    InvalidHeader,
    /// <summary>The stream ended in the middle of a message, or before the message that ends it.</summary>
    Truncated,
    /// <summary>An event's payload is not what its event type promises (such as JSON that is not an object).</summary>
    InvalidPayload,
    /// <summary>The service sent an <c>exception</c> message (a modelled error; <c>:exception-type</c>).</summary>
    ExceptionMessage,
    /// <summary>The service sent an <c>error</c> message (<c>:error-code</c>, <c>:error-message</c>).</summary>
    ErrorMessage,
}

/// <summary>
/// An event stream failed: corrupt or truncated bytes (the message says which check failed and at which byte of the
/// stream), or, as <see cref="EventStreamErrorException"/>, an exception or error message sent by the service.
/// Not an <c>AwsException</c>, since this file stands alone: the library's Lambda client throws its own
/// <c>LambdaStreamException</c> with this as the inner exception; around a loop over another service's stream, catch
/// it beside <c>AwsException</c>.
/// </summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
class EventStreamException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="kind">What was wrong.</param>
    /// <param name="message">What was wrong, in words, with what would be right.</param>
    /// <param name="offset">The byte offset in the stream where the faulty message (or part) starts, when known.</param>
    /// <param name="innerException">The cause, if any.</param>
    public EventStreamException(EventStreamErrorKind kind, string message, long? offset = null, Exception? innerException = null)
        : base(message, innerException)
    {
        Kind = kind;
        Offset = offset;
    }

    /// <summary>What was wrong.</summary>
    public EventStreamErrorKind Kind { get; }

    /// <summary>The byte offset in the stream of the faulty message or part, when known.</summary>
    public long? Offset { get; }
}

/// <summary>
/// The service sent an <c>exception</c> message (<see cref="EventStreamErrorKind.ExceptionMessage"/>, a modelled
/// error such as <c>ThrottlingException</c> or <c>ValidationException</c>) or an <c>error</c> message
/// (<see cref="EventStreamErrorKind.ErrorMessage"/>) in the middle of the stream.
/// </summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
sealed class EventStreamErrorException : EventStreamException
{
    private EventStreamErrorException(EventStreamErrorKind kind, string errorCode, string errorMessage, EventStreamMessage message)
        : base(kind, $"The event stream carried {(kind == EventStreamErrorKind.ExceptionMessage ? "an exception" : "an error")}: {errorCode}: {errorMessage}")
    {
        ErrorCode = errorCode;
        ErrorMessage = errorMessage;
        StreamMessage = message;
    }

    /// <summary>The <c>:exception-type</c> of an exception message, or the <c>:error-code</c> of an error message.</summary>
    public string ErrorCode { get; }

    /// <summary>The <c>:error-message</c> of an error message, or the <c>message</c> of an exception's JSON payload
    /// (the payload itself when it has none).</summary>
    public string ErrorMessage { get; }

    /// <summary>The message as received.</summary>
    public EventStreamMessage StreamMessage { get; }

    internal static EventStreamErrorException From(EventStreamMessage message)
    {
        string? type = message.MessageType;
        if (type == "exception")
            return new(EventStreamErrorKind.ExceptionMessage, message.ExceptionType ?? "UnknownException", PayloadMessage(message.Payload.Span), message);
        if (type == "error")
            return new(EventStreamErrorKind.ErrorMessage, message.ErrorCode ?? "UnknownError", message.ErrorMessage ?? PayloadMessage(message.Payload.Span), message);
        return new(EventStreamErrorKind.ErrorMessage, "UnknownMessageType",
            $"the message type is '{Utf8Text.Clip(type ?? "")}', where event, exception or error was expected", message);
    }

    // An exception's payload is usually {"message": "..."} (or "Message"); anything else is shown as text.
    private static string PayloadMessage(ReadOnlySpan<byte> payload)
    {
        try
        {
            var reader = new Utf8JsonReader(payload);
            if (reader.Read() && reader.TokenType == JsonTokenType.StartObject)
                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    bool isMessage = reader.ValueTextEquals("message"u8) || reader.ValueTextEquals("Message"u8);
                    reader.Read();
                    if (isMessage && reader.TokenType == JsonTokenType.String) return reader.GetString() ?? "";
                    reader.Skip();
                }
        }
        catch (JsonException)
        {
            // Not JSON: shown as text below.
        }
        return Utf8Text.Clip(payload);
    }
}

/// <summary>
/// Reads event-stream messages from a stream as they arrive, in place: one pooled buffer, and each message's headers
/// and payload read into the one array handed out with it. Reads only when asked for a message (the consumer sets the
/// pace). Every prelude and message CRC32, length and header is checked; a corrupt or truncated stream throws
/// <see cref="EventStreamException"/> saying what was wrong and where. Not for concurrent use.
/// </summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
sealed class EventStreamReader : IAsyncDisposable, IDisposable
{
    // The pooled buffer; a message body longer than DirectReadThreshold is read from the stream straight into the
    // array handed out, so large payloads are copied once.
    private const int BufferSize = 64 * 1024;
    private const int DirectReadThreshold = 4 * 1024;

    private readonly Stream _stream;
    private readonly bool _leaveOpen;
    private byte[]? _buffer;
    private int _start;            // the first unread byte in _buffer
    private int _end;              // one past the last byte read into _buffer
    private long _position;        // the stream offset of _buffer[_start]
    private bool _lastWasLarge;    // after a large message, read just the next trailer and prelude
    private int _busy;
    private bool _ended;
    private bool _disposed;
    private EventStreamException? _fault;

    /// <summary>Reads from <paramref name="stream"/>, from its current position.</summary>
    /// <param name="stream">The event stream, such as an HTTP response's content.</param>
    /// <param name="leaveOpen">Whether disposing the reader leaves the stream open.</param>
    public EventStreamReader(Stream stream, bool leaveOpen = false)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanRead) throw new ArgumentException("The stream must be readable.", nameof(stream));
        _stream = stream;
        _leaveOpen = leaveOpen;
    }

    /// <summary>How many bytes of the stream the messages read so far took.</summary>
    public long Position => _position;

    /// <summary>
    /// Reads the next message, or null when the stream ends cleanly between messages.
    /// </summary>
    /// <param name="cancellationToken">Cancels the read; the reader cannot be used after that.</param>
    /// <exception cref="EventStreamException">The stream is corrupt or ends in the middle of a message.</exception>
    /// <exception cref="InvalidOperationException">A read is already under way, or an earlier one failed.</exception>
    /// <exception cref="ObjectDisposedException">The reader was disposed.</exception>
    public ValueTask<EventStreamMessage?> ReadAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (cancellationToken.IsCancellationRequested) return ValueTask.FromCanceled<EventStreamMessage?>(cancellationToken);
        if (Interlocked.Exchange(ref _busy, 1) == 1)
            throw new InvalidOperationException("A read is already under way: read event-stream messages one at a time.");
        if (_fault is not null || _ended)
        {
            Volatile.Write(ref _busy, 0);
            if (_fault is not null)
                throw new InvalidOperationException("An earlier read found the event stream corrupt; the reader cannot go on: " + _fault.Message, _fault);
            return new((EventStreamMessage?)null);
        }
        // The whole message is often buffered already: no state machine then.
        try
        {
            if (TryReadBuffered(out var message))
            {
                Volatile.Write(ref _busy, 0);
                return new(message);
            }
        }
        catch (EventStreamException e)
        {
            _fault = e;
            Volatile.Write(ref _busy, 0);
            throw;
        }
        return ReadSlowAsync(cancellationToken);
    }

    /// <summary>Every message until the stream ends, as they arrive.</summary>
    /// <param name="cancellationToken">Stops reading.</param>
    /// <exception cref="EventStreamException">The stream is corrupt or ends in the middle of a message.</exception>
    public async IAsyncEnumerable<EventStreamMessage> ReadAllAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        while (await ReadAsync(cancellationToken).ConfigureAwait(false) is { } message)
            yield return message;
    }

    /// <summary>Returns the buffer to the pool and closes the stream (unless left open).</summary>
    public void Dispose()
    {
        if (!Release()) return;
        if (!_leaveOpen) _stream.Dispose();
    }

    /// <summary>Returns the buffer to the pool and closes the stream (unless left open).</summary>
    public async ValueTask DisposeAsync()
    {
        if (!Release()) return;
        if (!_leaveOpen) await _stream.DisposeAsync().ConfigureAwait(false);
    }

    private bool Release()
    {
        if (_disposed) return false;
        _disposed = true;
        // A read still under way (a caller that did not wait for it) returns the buffer when it ends.
        if (Volatile.Read(ref _busy) == 0) ReturnBuffer();
        return true;
    }

    private void ReturnBuffer()
    {
        if (Interlocked.Exchange(ref _buffer, null) is { } buffer) ArrayPool<byte>.Shared.Return(buffer);
    }

    private int Buffered => _end - _start;

    private bool TryReadBuffered(out EventStreamMessage message)
    {
        message = default;
        if (Buffered < EventStreamFraming.PreludeLength) return false;
        var preludeBytes = _buffer.AsSpan(_start, EventStreamFraming.PreludeLength);
        var prelude = EventStreamFraming.ReadPrelude(preludeBytes, _position);
        if (Buffered < prelude.TotalLength) return false;
        var body = GC.AllocateUninitializedArray<byte>(prelude.BodyLength);
        _buffer.AsSpan(_start + EventStreamFraming.PreludeLength, body.Length).CopyTo(body);
        message = EventStreamFraming.Check(prelude, body, EventStreamCrc32.Update(0, preludeBytes),
            BinaryPrimitives.ReadUInt32BigEndian(_buffer.AsSpan(_start + prelude.TotalLength - EventStreamFraming.CrcLength)));
        Consume(prelude.TotalLength);
        _lastWasLarge = false;
        return true;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<EventStreamMessage?> ReadSlowAsync(CancellationToken cancellationToken)
    {
        try
        {
            int preludeLimit = _lastWasLarge ? EventStreamFraming.PreludeLength : int.MaxValue;
            if (!await FillAsync(EventStreamFraming.PreludeLength, preludeLimit, cancellationToken).ConfigureAwait(false))
            {
                if (Buffered == 0)
                {
                    _ended = true;
                    return null;
                }
                throw Truncated(_position, Buffered, null);
            }
            long start = _position;
            var prelude = EventStreamFraming.ReadPrelude(_buffer.AsSpan(_start, EventStreamFraming.PreludeLength), start);
            uint crc = EventStreamCrc32.Update(0, _buffer.AsSpan(_start, EventStreamFraming.PreludeLength));
            Consume(EventStreamFraming.PreludeLength);

            var body = GC.AllocateUninitializedArray<byte>(prelude.BodyLength);
            await ReadBodyAsync(body, prelude, start, cancellationToken).ConfigureAwait(false);
            // After a large message the next one is likely large too: read only this one's CRC and the next prelude,
            // so that the next body goes straight into its own array.
            _lastWasLarge = body.Length >= DirectReadThreshold;
            int trailerLimit = _lastWasLarge ? EventStreamFraming.CrcLength + EventStreamFraming.PreludeLength : int.MaxValue;
            if (!await FillAsync(EventStreamFraming.CrcLength, trailerLimit, cancellationToken).ConfigureAwait(false))
                throw Truncated(start, prelude.TotalLength - EventStreamFraming.CrcLength + Buffered, prelude);
            var message = EventStreamFraming.Check(prelude, body, crc, BinaryPrimitives.ReadUInt32BigEndian(_buffer.AsSpan(_start)));
            Consume(EventStreamFraming.CrcLength);
            return message;
        }
        catch (EventStreamException e)
        {
            _fault = e;
            throw;
        }
        finally
        {
            Volatile.Write(ref _busy, 0);
            if (_disposed) ReturnBuffer();
        }
    }

    // The headers and payload: first what is buffered, then straight from the stream while much is missing.
    private async ValueTask ReadBodyAsync(byte[] body, EventStreamFraming.Prelude prelude, long start, CancellationToken cancellationToken)
    {
        int filled = Math.Min(Buffered, body.Length);
        _buffer.AsSpan(_start, filled).CopyTo(body);
        Consume(filled);
        while (filled < body.Length)
        {
            int missing = body.Length - filled;
            if (missing >= DirectReadThreshold)
            {
                int read = await _stream.ReadAsync(body.AsMemory(filled), cancellationToken).ConfigureAwait(false);
                if (read == 0) throw Truncated(start, EventStreamFraming.PreludeLength + filled, prelude);
                filled += read;
                _position += read;
                continue;
            }
            if (!await FillAsync(1, int.MaxValue, cancellationToken).ConfigureAwait(false))
                throw Truncated(start, EventStreamFraming.PreludeLength + filled, prelude);
            int take = Math.Min(Buffered, missing);
            _buffer.AsSpan(_start, take).CopyTo(body.AsSpan(filled));
            Consume(take);
            filled += take;
        }
    }

    // Ensures at least `count` bytes are buffered (count is small: a prelude, a CRC), reading no further than `limit`
    // bytes in the buffer. False when the stream ends first.
    private async ValueTask<bool> FillAsync(int count, int limit, CancellationToken cancellationToken)
    {
        if (Buffered >= count) return true;
        _buffer ??= ArrayPool<byte>.Shared.Rent(BufferSize);
        if (_start > 0)
        {
            _buffer.AsSpan(_start, Buffered).CopyTo(_buffer);
            _end -= _start;
            _start = 0;
        }
        while (_end < count)
        {
            int room = Math.Min(_buffer.Length, Math.Max(count, limit)) - _end;
            int read = await _stream.ReadAsync(_buffer.AsMemory(_end, room), cancellationToken).ConfigureAwait(false);
            if (read == 0) return false;
            _end += read;
        }
        return true;
    }

    private void Consume(int count)
    {
        _start += count;
        _position += count;
        if (_start == _end) _start = _end = 0;
    }

    private static EventStreamException Truncated(long start, long have, EventStreamFraming.Prelude? prelude) =>
        new(EventStreamErrorKind.Truncated, prelude is { } p
            ? $"The event stream ended in the middle of a message: the message at byte offset {start} is {p.TotalLength} bytes long, but only {have} arrived."
            : $"The event stream ended in the middle of a message prelude: the message at byte offset {start} has {have} of its 12 prelude bytes.", start);
}

/// <summary>
/// Writes event-stream messages: the prelude and its CRC32, the headers, the payload and the message CRC32. For
/// servers, emulators and tests, and for the event streams a client sends.
/// </summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
static class EventStreamEncoder
{
    /// <summary>The length of the encoded message.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The headers or the message would be longer than the limits
    /// (<see cref="EventStreamMessage.MaxHeadersLength"/>, <see cref="EventStreamMessage.MaxLength"/>).</exception>
    public static int GetEncodedLength(ReadOnlySpan<EventStreamHeader> headers, int payloadLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(payloadLength);
        long headersLength = 0;
        foreach (var header in headers) headersLength += header.EncodedLength;
        return CheckedLength(headersLength, payloadLength);
    }

    /// <summary>Encodes one message into a new array.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The headers or the message would be longer than the limits.</exception>
    public static byte[] Encode(ReadOnlySpan<EventStreamHeader> headers, ReadOnlySpan<byte> payload)
    {
        var message = new byte[GetEncodedLength(headers, payload.Length)];
        Encode(headers, payload, message);
        return message;
    }

    /// <summary>Encodes one message into <paramref name="destination"/>; returns the bytes written.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The headers or the message would be longer than the limits.</exception>
    /// <exception cref="ArgumentException">The destination is shorter than <see cref="GetEncodedLength"/>.</exception>
    public static int Encode(ReadOnlySpan<EventStreamHeader> headers, ReadOnlySpan<byte> payload, Span<byte> destination)
    {
        int total = GetEncodedLength(headers, payload.Length);
        if (destination.Length < total)
            throw new ArgumentException($"The destination holds {destination.Length} bytes; the message needs {total}.", nameof(destination));
        int at = EventStreamFraming.PreludeLength;
        foreach (var header in headers) at += header.Write(destination[at..]);
        return EventStreamFraming.Seal(destination[..total], at - EventStreamFraming.PreludeLength, payload);
    }

    /// <summary>Encodes a message that was read (its headers as they were on the wire).</summary>
    internal static byte[] Reencode(EventStreamHeaders headers, ReadOnlySpan<byte> payload)
    {
        var encoded = headers.Encoded.Span;
        var message = new byte[CheckedLength(encoded.Length, payload.Length)];
        encoded.CopyTo(message.AsSpan(EventStreamFraming.PreludeLength));
        EventStreamFraming.Seal(message, encoded.Length, payload);
        return message;
    }

    private static int CheckedLength(long headersLength, int payloadLength)
    {
        if (headersLength > EventStreamMessage.MaxHeadersLength)
            throw new ArgumentOutOfRangeException(nameof(headersLength), headersLength, $"The headers take {headersLength} bytes; a message holds at most {EventStreamMessage.MaxHeadersLength}.");
        long total = EventStreamMessage.MinLength + headersLength + payloadLength;
        if (total > EventStreamMessage.MaxLength)
            throw new ArgumentOutOfRangeException(nameof(payloadLength), total, $"The message would be {total} bytes; a message is at most {EventStreamMessage.MaxLength} (16 MiB): send the payload in several.");
        return (int)total;
    }
}

// The framing rules the reader and the encoder share.
internal static class EventStreamFraming
{
    public const int PreludeLength = 12;
    public const int CrcLength = 4;

    public readonly struct Prelude(int totalLength, int headersLength, long offset)
    {
        public int TotalLength { get; } = totalLength;
        public int HeadersLength { get; } = headersLength;
        public int BodyLength => TotalLength - PreludeLength - CrcLength;
        public long Offset { get; } = offset;
    }

    // Checks the prelude's CRC, then its lengths; the CRC comes first so that a damaged length is reported as damage.
    public static Prelude ReadPrelude(ReadOnlySpan<byte> prelude, long offset)
    {
        uint total = BinaryPrimitives.ReadUInt32BigEndian(prelude);
        uint headers = BinaryPrimitives.ReadUInt32BigEndian(prelude[4..]);
        uint expected = BinaryPrimitives.ReadUInt32BigEndian(prelude[8..]);
        uint actual = EventStreamCrc32.Compute(prelude[..8]);
        if (actual != expected)
            throw new EventStreamException(EventStreamErrorKind.PreludeChecksumMismatch,
                $"The prelude CRC32 of the message at byte offset {offset} does not match: the message says 0x{expected:X8}, its first 8 bytes give 0x{actual:X8}. The stream is damaged (or is not an event stream).", offset);
        if (total < EventStreamMessage.MinLength || total > EventStreamMessage.MaxLength)
            throw new EventStreamException(EventStreamErrorKind.InvalidMessageLength,
                $"The message at byte offset {offset} declares a total length of {total} bytes; a message is {EventStreamMessage.MinLength} bytes to {EventStreamMessage.MaxLength} (16 MiB).", offset);
        if (headers > EventStreamMessage.MaxHeadersLength)
            throw new EventStreamException(EventStreamErrorKind.InvalidHeadersLength,
                $"The message at byte offset {offset} declares {headers} bytes of headers; a message holds at most {EventStreamMessage.MaxHeadersLength} (128 KiB).", offset);
        if (headers > total - EventStreamMessage.MinLength)
            throw new EventStreamException(EventStreamErrorKind.InvalidHeadersLength,
                $"The message at byte offset {offset} declares {headers} bytes of headers in a total of {total}: at most {total - EventStreamMessage.MinLength} fit beside the 12-byte prelude and 4-byte CRC.", offset);
        return new Prelude((int)total, (int)headers, offset);
    }

    // Checks the headers, then the message CRC; returns the message. Headers come first so that a malformed header is
    // named (as the CRT and smithy-rs do); the message then says whether the CRC fails too.
    public static EventStreamMessage Check(Prelude prelude, byte[] body, uint preludeCrc, uint expectedCrc)
    {
        uint actual = EventStreamCrc32.Update(preludeCrc, body);
        if (ValidateHeaders(body.AsSpan(0, prelude.HeadersLength)) is { } problem)
            throw new EventStreamException(EventStreamErrorKind.InvalidHeader,
                $"The message at byte offset {prelude.Offset} has a malformed header: {problem.Text} (at byte offset {prelude.Offset + PreludeLength + problem.At})" +
                (actual == expectedCrc ? "." : "; its message CRC32 does not match either: the bytes were damaged."), prelude.Offset);
        if (actual != expectedCrc)
            throw new EventStreamException(EventStreamErrorKind.MessageChecksumMismatch,
                $"The message CRC32 of the {prelude.TotalLength}-byte message at byte offset {prelude.Offset} does not match: the message says 0x{expectedCrc:X8}, its bytes give 0x{actual:X8}. The stream is damaged.", prelude.Offset);
        return new EventStreamMessage(body, prelude.HeadersLength);
    }

    // Writes the prelude (and its CRC) before the headers already in `message`, the payload after them, and the CRC.
    public static int Seal(Span<byte> message, int headersLength, ReadOnlySpan<byte> payload)
    {
        BinaryPrimitives.WriteUInt32BigEndian(message, (uint)message.Length);
        BinaryPrimitives.WriteUInt32BigEndian(message[4..], (uint)headersLength);
        BinaryPrimitives.WriteUInt32BigEndian(message[8..], EventStreamCrc32.Compute(message[..8]));
        payload.CopyTo(message[(PreludeLength + headersLength)..]);
        BinaryPrimitives.WriteUInt32BigEndian(message[^CrcLength..], EventStreamCrc32.Compute(message[..^CrcLength]));
        return message.Length;
    }

    // The length of a value of `type` that starts at `value`, and of its u16 length prefix; -1 for an unknown type.
    public static int ValueLength(EventStreamHeaderType type, ReadOnlySpan<byte> value, out int lengthPrefix)
    {
        lengthPrefix = 0;
        switch (type)
        {
            case EventStreamHeaderType.BoolTrue or EventStreamHeaderType.BoolFalse: return 0;
            case EventStreamHeaderType.Byte: return 1;
            case EventStreamHeaderType.Int16: return 2;
            case EventStreamHeaderType.Int32: return 4;
            case EventStreamHeaderType.Int64 or EventStreamHeaderType.Timestamp: return 8;
            case EventStreamHeaderType.Uuid: return 16;
            case EventStreamHeaderType.ByteArray or EventStreamHeaderType.String:
                lengthPrefix = 2;
                return value.Length < 2 ? int.MaxValue : BinaryPrimitives.ReadUInt16BigEndian(value);
            default: return -1;
        }
    }

    // Walks the headers once, checking every length against what is left; null when they are well formed.
    private static (string Text, int At)? ValidateHeaders(ReadOnlySpan<byte> headers)
    {
        int at = 0;
        while (at < headers.Length)
        {
            int start = at;
            int nameLength = headers[at++];
            if (nameLength == 0) return ("a header name is empty (a name is 1 to 255 bytes)", start);
            if (nameLength + 1 > headers.Length - at)
                return ($"the header name length {nameLength} runs past the end of the headers ({headers.Length - at} bytes left for the name and its value type)", start);
            var name = headers.Slice(at, nameLength);
            if (!Utf8.IsValid(name)) return ("a header name is not valid UTF-8", start);
            at += nameLength;
            byte type = headers[at++];
            int length = ValueLength((EventStreamHeaderType)type, headers[at..], out int prefix);
            if (length < 0) return ($"header '{Utf8Text.Clip(name)}' has the unknown value type {type} (types are 0 to 9)", start);
            if ((long)prefix + length > headers.Length - at)
                return ($"the value of header '{Utf8Text.Clip(name)}' ({EventStreamHeaderValue.Describe((EventStreamHeaderType)type)}, " +
                        (prefix == 0 ? $"{length} bytes" : length == int.MaxValue ? "its 2-byte length" : $"{length} bytes after its length") +
                        $") runs past the end of the headers ({headers.Length - at} bytes left)", start);
            if (type == (byte)EventStreamHeaderType.String && !Utf8.IsValid(headers.Slice(at + prefix, length)))
                return ($"the string value of header '{Utf8Text.Clip(name)}' is not valid UTF-8", start);
            at += prefix + length;
        }
        return null;
    }
}

/// <summary>
/// Reads the event stream of an HTTP answer, such as the one <c>AwsClient.SendStreamingAsync</c> returns for Bedrock's
/// <c>ConverseStream</c>, S3's <c>SelectObjectContent</c> or Lambda's <c>InvokeWithResponseStream</c>.
/// </summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
static class EventStreamHttpExtensions
{
    /// <summary>
    /// The messages of <paramref name="response"/>'s event stream as they arrive. The next message is read only when
    /// it is asked for (a consumer that falls behind holds the sender back), and each message owns its bytes: keep it
    /// as long as you like. The response is disposed when the loop ends. Breaking out of the loop, cancelling or a
    /// failure closes its connection at once, even while the service is still sending.
    /// </summary>
    /// <param name="response">A successful answer whose body is unread (sent with
    /// <see cref="HttpCompletionOption.ResponseHeadersRead"/>).</param>
    /// <param name="cancellationToken">Stops reading (an <see cref="OperationCanceledException"/>) and closes the connection.</param>
    /// <exception cref="ArgumentException">The answer is not a success (2xx): it carries an error document, not an
    /// event stream.</exception>
    /// <remarks>
    /// While reading: a corrupt or truncated stream throws <see cref="EventStreamException"/>; a failing connection an
    /// <see cref="IOException"/>. An <c>exception</c> or <c>error</c> message is handed out like any other: call
    /// <see cref="EventStreamMessage.EnsureEvent"/> to throw it as an <see cref="EventStreamErrorException"/>. None of
    /// these derive from the library's <c>AwsException</c>: this file stands alone.
    /// </remarks>
    public static IAsyncEnumerable<EventStreamMessage> ReadEventStreamAsync(this HttpResponseMessage response, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(response);
        if (!response.IsSuccessStatusCode)
            throw new ArgumentException($"The answer is HTTP {(int)response.StatusCode}: an error, not an event stream. Read its body as the " +
                "service's error (AwsClient.SendStreamingAsync throws it as an AwsServiceException), or pass a successful answer.", nameof(response));
        return EventStreamHttp.ReadMessagesAsync(response, cancellationToken);
    }
}

/// <summary>Reads and closes the event stream of an HTTP response: the send pipeline's helper.</summary>
internal static class EventStreamHttp
{
    public const string ContentType = "application/vnd.amazon.eventstream";

    /// <summary>
    /// The messages of <paramref name="response"/> as they arrive. Nothing is read ahead of the consumer: the next
    /// message is read when it is asked for, into one pooled buffer (the rest waits in the socket, and the sender
    /// waits once that is full). Breaking out of the loop, cancelling or a failure disposes the response at once,
    /// closing its connection, even while the server is still sending.
    /// </summary>
    public static async IAsyncEnumerable<EventStreamMessage> ReadMessagesAsync(HttpResponseMessage response,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(response);
        Stream? stream = null;
        EventStreamReader? reader = null;
        bool complete = false;
        try
        {
            // Without the token: the stream is at hand once the headers are, and the abort below needs it.
            stream = await response.Content.ReadAsStreamAsync(CancellationToken.None).ConfigureAwait(false);
            reader = new EventStreamReader(stream);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false) is { } message)
                yield return message;
            complete = true;
        }
        finally
        {
            // Disposing alone would let the HTTP stack drain what the server still sends (up to its drain limit and
            // timeout) to reuse the connection; an early end closes it instead.
            if (!complete && stream is not null) await AbortConnectionAsync(stream).ConfigureAwait(false);
            if (reader is not null) await reader.DisposeAsync().ConfigureAwait(false);
            response.Dispose();
        }
    }

    /// <summary>Disposes a response whose body may be unread or half read, closing its connection at once instead
    /// of letting the HTTP stack drain it.</summary>
    public static async ValueTask CloseAsync(HttpResponseMessage response)
    {
        try
        {
            await AbortConnectionAsync(await response.Content.ReadAsStreamAsync(CancellationToken.None).ConfigureAwait(false)).ConfigureAwait(false);
        }
        catch (Exception e) when (e is ObjectDisposedException or InvalidOperationException or IOException or HttpRequestException)
        {
            // Disposed or failed already: nothing to close.
        }
        finally
        {
            response.Dispose();
        }
    }

    // A read cancelled while it waits makes the HTTP stack abort the connection (SocketsHttpHandler disposes it;
    // HTTP/2 resets the stream). Bytes already buffered complete reads at once, and bytes arriving while the cancel
    // is under way can win the race: so read (and drop) until a cancelled read wins, for a short while at most; after
    // that, disposing the response drains and closes it as the handler decides.
    private static async ValueTask AbortConnectionAsync(Stream stream)
    {
        byte[] scratch = ArrayPool<byte>.Shared.Rent(16 * 1024);
        long deadline = Environment.TickCount64 + 200;
        try
        {
            while (Environment.TickCount64 < deadline)
            {
                using var cancel = new CancellationTokenSource();
                var read = stream.ReadAsync(scratch, cancel.Token);
                if (!read.IsCompleted) cancel.Cancel();
                if (await read.ConfigureAwait(false) == 0) return; // the server had finished after all
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or InvalidOperationException or IOException or HttpRequestException or NotSupportedException)
        {
            // Cancelled: the connection is closed. Otherwise it was closed already, or failed.
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(scratch);
        }
    }
}

// Comparisons and clipping of UTF-8 text without making strings.
internal static class Utf8Text
{
    private const int MaxQuoted = 200;

    public static bool Equals(ReadOnlySpan<byte> utf8, string text)
    {
        if (utf8.Length < text.Length || utf8.Length > text.Length * 3) return false;
        if (utf8.Length == text.Length)
        {
            // All ASCII on both sides, or not equal.
            for (int i = 0; i < text.Length; i++)
                if (utf8[i] != text[i]) return false;
            return true;
        }
        byte[]? rented = null;
        Span<byte> encoded = text.Length <= 256 ? stackalloc byte[text.Length * 3] : (rented = ArrayPool<byte>.Shared.Rent(text.Length * 3));
        try
        {
            int length = Encoding.UTF8.GetBytes(text, encoded);
            return encoded[..length].SequenceEqual(utf8);
        }
        finally
        {
            if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
        }
    }

    // Copies the bytes and says how many: the encoder's step for values kept as bytes.
    public static int Copy(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        source.CopyTo(destination);
        return source.Length;
    }

    public static string Clip(string text) => text.Length <= MaxQuoted ? text : string.Concat(text.AsSpan(0, MaxQuoted), "...");

    public static string Clip(ReadOnlySpan<byte> utf8) => Clip(Encoding.UTF8.GetString(utf8[..Math.Min(utf8.Length, (MaxQuoted + 1) * 3)]));
}

/// <summary>
/// CRC-32 as zlib, Ethernet and the event streams compute it (IEEE 802.3, reflected polynomial 0xEDB88320): folded
/// with carry-less multiplication (PCLMULQDQ) on x86, the CRC32 instructions on Arm64, slicing-by-8 tables elsewhere.
/// </summary>
internal static class EventStreamCrc32
{
    private const int FoldThreshold = 64;

    // Slicing-by-8: table k gives the CRC of a byte followed by k zero bytes.
    private static readonly uint[] s_tables = BuildTables();

    /// <summary>The CRC-32 of <paramref name="data"/>.</summary>
    public static uint Compute(ReadOnlySpan<byte> data) => Update(0, data);

    /// <summary>The CRC-32 of the bytes whose CRC-32 is <paramref name="crc"/> followed by <paramref name="data"/>
    /// (zlib's <c>crc32(crc, buf, len)</c>).</summary>
    public static uint Update(uint crc, ReadOnlySpan<byte> data)
    {
        uint state = ~crc;
        if (Pclmulqdq.IsSupported && Sse2.IsSupported && data.Length >= FoldThreshold)
        {
            int folded = data.Length & ~15;
            state = FoldPclmul(state, data[..folded]);
            data = data[folded..];
        }
        else if (System.Runtime.Intrinsics.Arm.Crc32.Arm64.IsSupported)
        {
            return ~UpdateArm64(state, data);
        }
        return ~UpdateScalar(state, data);
    }

    // The scalar path on its own (state = ~crc), for tests on machines that have the faster ones.
    internal static uint ComputeScalar(ReadOnlySpan<byte> data) => ~UpdateScalar(~0u, data);

    internal static bool HasPclmul => Pclmulqdq.IsSupported && Sse2.IsSupported;

    internal static uint ComputePclmul(ReadOnlySpan<byte> data)
    {
        if (data.Length < FoldThreshold) return ComputeScalar(data);
        int folded = data.Length & ~15;
        return ~UpdateScalar(FoldPclmul(~0u, data[..folded]), data[folded..]);
    }

    private static uint UpdateScalar(uint state, ReadOnlySpan<byte> data)
    {
        uint[] t = s_tables;
        while (data.Length >= 8)
        {
            uint one = BinaryPrimitives.ReadUInt32LittleEndian(data) ^ state;
            uint two = BinaryPrimitives.ReadUInt32LittleEndian(data[4..]);
            state = t[7 * 256 + (one & 0xFF)] ^ t[6 * 256 + ((one >> 8) & 0xFF)] ^ t[5 * 256 + ((one >> 16) & 0xFF)] ^ t[4 * 256 + (one >> 24)]
                  ^ t[3 * 256 + (two & 0xFF)] ^ t[2 * 256 + ((two >> 8) & 0xFF)] ^ t[256 + ((two >> 16) & 0xFF)] ^ t[two >> 24];
            data = data[8..];
        }
        foreach (byte b in data) state = t[(state ^ b) & 0xFF] ^ (state >> 8);
        return state;
    }

    private static uint UpdateArm64(uint state, ReadOnlySpan<byte> data)
    {
        while (data.Length >= 8)
        {
            state = System.Runtime.Intrinsics.Arm.Crc32.Arm64.ComputeCrc32(state, BinaryPrimitives.ReadUInt64LittleEndian(data));
            data = data[8..];
        }
        foreach (byte b in data) state = System.Runtime.Intrinsics.Arm.Crc32.ComputeCrc32(state, b);
        return state;
    }

    // Folds 64 bytes at a time in four 128-bit lanes, then 16 at a time in one, then reduces to 32 bits (Barrett), as
    // in Intel's "Fast CRC Computation for Generic Polynomials Using PCLMULQDQ", bit-reflected. The length is a
    // multiple of 16, at least 64. The constants are x^k mod P for the fold distances, and P' and mu for the reduction.
    private static uint FoldPclmul(uint state, ReadOnlySpan<byte> data)
    {
        ref byte start = ref MemoryMarshal.GetReference(data);
        nuint length = (nuint)data.Length;
        var k1k2 = Vector128.Create(0x0154442BD4UL, 0x01C6E41596UL); // x^(4*128+32), x^(4*128-32) mod P, reflected
        var k3k4 = Vector128.Create(0x01751997D0UL, 0x00CCAA009EUL); // x^(128+32), x^(128-32)
        var k5 = Vector128.Create(0x0163CD6124UL, 0UL);              // x^64
        var poly = Vector128.Create(0x01DB710641UL, 0x01F7011641UL); // P' and mu
        var mask32 = Vector128.Create(~0u, 0u, ~0u, 0u).AsUInt64();

        var x1 = Load(ref start, 0) ^ Vector128.CreateScalar(state).AsUInt64();
        var x2 = Load(ref start, 16);
        var x3 = Load(ref start, 32);
        var x4 = Load(ref start, 48);
        nuint at = 64;
        for (; length - at >= 64; at += 64)
        {
            x1 = Fold(x1, k1k2) ^ Load(ref start, at);
            x2 = Fold(x2, k1k2) ^ Load(ref start, at + 16);
            x3 = Fold(x3, k1k2) ^ Load(ref start, at + 32);
            x4 = Fold(x4, k1k2) ^ Load(ref start, at + 48);
        }
        x1 = Fold(x1, k3k4) ^ x2;
        x1 = Fold(x1, k3k4) ^ x3;
        x1 = Fold(x1, k3k4) ^ x4;
        for (; length - at >= 16; at += 16)
            x1 = Fold(x1, k3k4) ^ Load(ref start, at);

        // 128 bits to 64, then 64 to 32 with Barrett reduction.
        x1 = Sse2.ShiftRightLogical128BitLane(x1, 8) ^ Pclmulqdq.CarrylessMultiply(x1, k3k4, 0x10);
        x1 = Sse2.ShiftRightLogical128BitLane(x1, 4) ^ Pclmulqdq.CarrylessMultiply(x1 & mask32, k5, 0x00);
        var t = Pclmulqdq.CarrylessMultiply(x1 & mask32, poly, 0x10);
        t = Pclmulqdq.CarrylessMultiply(t & mask32, poly, 0x00);
        return (x1 ^ t).AsUInt32().GetElement(1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<ulong> Fold(Vector128<ulong> x, Vector128<ulong> k) =>
        Pclmulqdq.CarrylessMultiply(x, k, 0x00) ^ Pclmulqdq.CarrylessMultiply(x, k, 0x11);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<ulong> Load(ref byte start, nuint offset) => Vector128.LoadUnsafe(ref start, offset).AsUInt64();

    private static uint[] BuildTables()
    {
        var tables = new uint[8 * 256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int bit = 0; bit < 8; bit++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            tables[i] = c;
        }
        for (int k = 1; k < 8; k++)
            for (int i = 0; i < 256; i++)
            {
                uint previous = tables[(k - 1) * 256 + i];
                tables[k * 256 + i] = (previous >> 8) ^ tables[previous & 0xFF];
            }
        return tables;
    }
}
