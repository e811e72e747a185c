using System;
using System.Collections.Generic;

namespace SigV4Lite.Emulator;

/// <summary>How a <see cref="LambdaEmulator"/> listens, whom it trusts and what it does with unknown functions.</summary>
public sealed class LambdaEmulatorOptions
{
    /// <summary>The example access key id of the SigV4 test suite, accepted by default.</summary>
    public const string ExampleAccessKeyId = "AKIDEXAMPLE";

    /// <summary>The example secret access key of the SigV4 test suite, accepted by default.</summary>
    public const string ExampleSecretAccessKey = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    /// <summary>The port to listen on, on 127.0.0.1 only; 0 (the default) picks any free port, see <see cref="LambdaEmulator.Endpoint"/>.</summary>
    public int Port { get; init; }

    /// <summary>The credentials requests may be signed with: access key id to secret access key. By default the
    /// suite's example pair, <see cref="ExampleAccessKeyId"/> and <see cref="ExampleSecretAccessKey"/>.</summary>
    public IReadOnlyDictionary<string, string> Credentials { get; init; } =
        new Dictionary<string, string>(StringComparer.Ordinal) { [ExampleAccessKeyId] = ExampleSecretAccessKey };

    /// <summary>The region signatures must be scoped to; <c>us-east-1</c> by default.</summary>
    public string Region { get; init; } = "us-east-1";

    /// <summary>Whether requests must be validly signed (the default). False serves unsigned requests too, which
    /// measures the cost of everything but verification.</summary>
    public bool VerifySignatures { get; init; } = true;

    /// <summary>Whether a function that was never added answers with <see cref="LambdaEmulator.Echo"/> (true; streamed
    /// by <see cref="LambdaEmulator.StreamingEcho"/> to InvokeWithResponseStream) or 404 ResourceNotFoundException, as
    /// AWS does (false, the default).</summary>
    public bool EchoUnknownFunctions { get; init; }

    /// <summary>The emulator's clock, used to check signature times and to write the <c>Date</c> header;
    /// <see cref="TimeProvider.System"/> by default. Tests move it to provoke clock skew.</summary>
    public TimeProvider Clock { get; init; } = TimeProvider.System;

    /// <summary>The default of <see cref="MaxConcurrentConnections"/>: 1,000, Lambda's default concurrency quota of
    /// an account.</summary>
    public const int DefaultMaxConcurrentConnections = 1000;

    /// <summary>The most connections open at once; a connection past them is closed as soon as it is accepted
    /// (clients see a reset connection, which AWS clients retry). <see cref="DefaultMaxConcurrentConnections"/> by
    /// default. Together with the per-connection limits it bounds the emulator's memory: a connection holds at most
    /// its headers (32 KB), 64 KB received ahead of reading, and, once its signature's form, key, scope and time are
    /// checked, its payload (6 MB).</summary>
    public int MaxConcurrentConnections { get; init; } = DefaultMaxConcurrentConnections;

    /// <inheritdoc/>
    public override string ToString() =>
        $"LambdaEmulatorOptions {{ Port = {Port}, Region = {Region}, AccessKeyIds = [{string.Join(", ", Credentials?.Keys ?? [])}], " +
        $"VerifySignatures = {VerifySignatures}, EchoUnknownFunctions = {EchoUnknownFunctions}, MaxConcurrentConnections = {MaxConcurrentConnections} }}";
}
