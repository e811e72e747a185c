using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using SigV4Lite.Emulator;

namespace SigV4Lite.Tests;

// Spans and metrics as OpenTelemetry's AWS SDK conventions name them, seen through the BCL's own listeners.
[NonParallelizable]
public class TelemetryTests
{
    private static AwsRequest GetItem() => AwsRequest.AwsJson("DynamoDB_20120810.GetItem", """{"TableName":"t"}""");

    private sealed class Recorder : IDisposable
    {
        private readonly ActivityListener _activities;
        private readonly MeterListener _meters = new();

        public Recorder()
        {
            _activities = new ActivityListener
            {
                ShouldListenTo = source => source.Name == AwsTelemetry.SourceName,
                Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
                ActivityStopped = activity => Spans.Enqueue(activity),
            };
            ActivitySource.AddActivityListener(_activities);
            _meters.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == AwsTelemetry.MeterName) listener.EnableMeasurementEvents(instrument);
            };
            _meters.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Measures.Enqueue((instrument.Name, value, tags.ToArray())));
            _meters.SetMeasurementEventCallback<double>((instrument, value, tags, _) => Measures.Enqueue((instrument.Name, value, tags.ToArray())));
            _meters.Start();
        }

        public ConcurrentQueue<Activity> Spans { get; } = new();
        public ConcurrentQueue<(string Name, double Value, KeyValuePair<string, object?>[] Tags)> Measures { get; } = new();

        public double Sum(string name) => Measures.Where(m => m.Name == name).Sum(m => m.Value);

        public void Dispose()
        {
            _activities.Dispose();
            _meters.Dispose();
        }
    }

    [Test]
    public async Task ACallIsASpanNamedServiceOperationWithTheConventionsTags()
    {
        await using var dynamo = new FakeAwsService("dynamodb", (_, call) => call == 1
            ? FakeAwsService.JsonError(400, "ThrottlingException", "slow down")
            : Reply.Json("{}") with { Headers = [new("x-amzn-RequestId", "REQ-OK")] });
        using var client = dynamo.Client(AwsService.DynamoDB);
        using var recorder = new Recorder();

        await client.SendAsync(GetItem());

        var span = recorder.Spans.Single(s => s.OperationName == "DynamoDB.GetItem");
        Assert.That(span.Kind, Is.EqualTo(ActivityKind.Client));
        Assert.That(span.GetTagItem("rpc.system"), Is.EqualTo("aws-api"));
        Assert.That(span.GetTagItem("rpc.service"), Is.EqualTo("DynamoDB"));
        Assert.That(span.GetTagItem("rpc.method"), Is.EqualTo("GetItem"));
        Assert.That(span.GetTagItem("cloud.region"), Is.EqualTo(FakeAwsService.Region));
        Assert.That(span.GetTagItem("aws.request_id"), Is.EqualTo("REQ-OK"));
        Assert.That(span.Status, Is.EqualTo(ActivityStatusCode.Unset));
        Assert.That(recorder.Sum("client.call.attempts"), Is.EqualTo(2));
        Assert.That(recorder.Sum("sigv4lite.client.call.retries"), Is.EqualTo(1));
        Assert.That(recorder.Sum("sigv4lite.client.call.throttles"), Is.EqualTo(1));
        Assert.That(recorder.Measures.Count(m => m.Name == "client.call.duration"), Is.EqualTo(1));
        Assert.That(recorder.Sum("sigv4lite.client.calls_in_flight"), Is.Zero, "up one, down one");
        var duration = recorder.Measures.Single(m => m.Name == "client.call.duration");
        Assert.That(duration.Tags, Does.Contain(new KeyValuePair<string, object?>("rpc.method", "GetItem")));
    }

    [Test]
    public async Task AFailedCallIsAnErrorSpanAndAnErrorByCode()
    {
        await using var dynamo = new FakeAwsService("dynamodb", (_, _) => FakeAwsService.JsonError(400, "ResourceNotFoundException", "no table"));
        using var client = dynamo.Client(AwsService.DynamoDB);
        using var recorder = new Recorder();

        Assert.ThrowsAsync<AwsServiceException>(() => client.SendAsync(GetItem()));

        var span = recorder.Spans.Single(s => s.OperationName == "DynamoDB.GetItem");
        Assert.That(span.Status, Is.EqualTo(ActivityStatusCode.Error));
        Assert.That(span.GetTagItem("error.type"), Is.EqualTo("ResourceNotFoundException"));
        Assert.That(span.GetTagItem("http.response.status_code"), Is.EqualTo(400));
        var error = recorder.Measures.Single(m => m.Name == "client.call.errors");
        Assert.That(error.Tags, Does.Contain(new KeyValuePair<string, object?>("error.type", "ResourceNotFoundException")));
    }

    [Test]
    public async Task LambdaSpansNameTheFunctionAndFunctionErrorsAreCounted()
    {
        await using var emulator = await LambdaEmulator.StartAsync();
        emulator.AddFunction("crash", (_, _) => throw new InvalidOperationException("boom"));
        emulator.AddFunction("echo", LambdaEmulator.Echo);
        using var lambda = new LambdaClient(new AwsClientOptions
        {
            Endpoint = emulator.Endpoint, Region = emulator.Options.Region, Credentials = EmulatorTestSupport.ExampleCredentials,
            Config = new AwsConfigOptions { GetEnvironmentVariable = _ => null },
        });
        using var recorder = new Recorder();

        var outcomes = await lambda.InvokeAllSettledAsync([new LambdaRequest("echo", "{}"), new LambdaRequest("crash", "{}")]);

        Assert.That(outcomes[1].Error, Is.InstanceOf<LambdaFunctionException>());
        var span = recorder.Spans.Single(s => (string?)s.GetTagItem("faas.invoked_name") == "echo");
        Assert.That(span.OperationName, Is.EqualTo("Lambda.Invoke"));
        Assert.That(span.GetTagItem("faas.invoked_provider"), Is.EqualTo("aws"));
        Assert.That(span.GetTagItem("faas.invoked_region"), Is.EqualTo(emulator.Options.Region));
        Assert.That(recorder.Sum("sigv4lite.lambda.function_errors"), Is.EqualTo(1));
        Assert.That(recorder.Measures.Where(m => m.Name == "sigv4lite.fanout.calls").Select(m => m.Tags.Single().Value), Is.EquivalentTo(new[] { "success", "failure" }));
    }

    [Test]
    public async Task NoTagEverCarriesAPayloadAKeyATokenOrASignature()
    {
        var credentials = new AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "SESSION-TOKEN-SECRET-VALUE");
        await using var server = new FakeHttpServer(r => new Reply(403, $$"""{"__type":"InvalidSignatureException","message":"bad {{r.Header("Authorization")}} SESSION-TOKEN-SECRET-VALUE"}"""));
        using var client = new AwsClient(AwsService.DynamoDB, new AwsClientOptions
        {
            Region = "us-east-1", Endpoint = server.Url, Credentials = credentials,
            Config = new AwsConfigOptions { GetEnvironmentVariable = _ => null },
        });
        using var recorder = new Recorder();

        Assert.ThrowsAsync<AwsServiceException>(() => client.SendAsync(AwsRequest.AwsJson("DynamoDB_20120810.PutItem", """{"Item":"PAYLOAD-SECRET"}""")));

        var texts = recorder.Spans.SelectMany(s => s.TagObjects.Select(t => $"{t.Key}={t.Value}").Append(s.StatusDescription ?? ""))
            .Concat(recorder.Measures.SelectMany(m => m.Tags.Select(t => $"{t.Key}={t.Value}")))
            .ToList();
        Assert.That(texts, Is.Not.Empty);
        foreach (var text in texts)
        {
            Assert.That(text, Does.Not.Contain("PAYLOAD-SECRET"));
            Assert.That(text, Does.Not.Contain("SESSION-TOKEN-SECRET-VALUE"));
            Assert.That(text, Does.Not.Contain(credentials.SecretAccessKey));
            Assert.That(text, Does.Not.Contain("Signature="));
        }
    }
}
