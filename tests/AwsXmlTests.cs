using System.Text;
using System.Xml;
using NUnit.Framework;

namespace SigV4Lite.Tests;

// AwsXml reads the leaf elements of AWS's XML answers (errors, STS credentials) without System.Xml. These tests hold it
// to System.Xml's reader (the one it replaced, as that code used it: no DTD, first leaf of each name) on every kind of
// markup AWS and a hostile server could send, and on every truncation of a document.
public class AwsXmlTests
{
    private static readonly string[] Names = ["Code", "Message", "RequestId", "AccessKeyId", "SecretAccessKey"];

    private static Dictionary<string, string> Read(string xml, out string? error) =>
        AwsXml.ReadLeaves(Encoding.UTF8.GetBytes(xml), Names, out error);

    [Test]
    public void ReadsTheLeavesOfAnAwsQueryError()
    {
        var values = Read("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n" +
            "  <Error>\n    <Type>Sender</Type>\n    <Code>AccessDenied</Code>\n    <Message>User: arn:aws:iam::123456789012:user/x is not authorized</Message>\n" +
            "  </Error>\n  <RequestId>4e5b0ea6-example</RequestId>\n</ErrorResponse>\n", out var error);
        Assert.That(error, Is.Null);
        Assert.That(values, Is.EqualTo(new Dictionary<string, string>
        {
            ["Code"] = "AccessDenied",
            ["Message"] = "User: arn:aws:iam::123456789012:user/x is not authorized",
            ["RequestId"] = "4e5b0ea6-example",
        }));
    }

    [Test]
    public void DecodesEntitiesCDataAndCommentsInsideALeafAsAnXmlReaderDoes()
    {
        const string xml = "<e:Error xmlns:e=\"urn:x\" a='1>2'><e:Code>A&amp;B&#65;&#x42;&lt;&gt;&quot;&apos;</e:Code>" +
            "<Message>one <!-- not text -->two<![CDATA[ <three> & ]]>four</Message><RequestId/></e:Error>";
        var values = Read(xml, out var error);
        Assert.That(error, Is.Null);
        Assert.That(values["Code"], Is.EqualTo("A&BAB<>\"'"));
        Assert.That(values["Message"], Is.EqualTo("one two <three> & four"));
        Assert.That(values["RequestId"], Is.EqualTo(""));
        Assert.That(values, Is.EqualTo(Reference(xml, out _)));
    }

    [Test]
    public void TakesTheFirstLeafOfANameAndNoTextFromAnElementWithChildren()
    {
        var values = Read("<Error><Code><Code>inner</Code></Code><Code>second</Code><Message>m1</Message><Message>m2</Message></Error>", out var error);
        Assert.That(error, Is.Null);
        Assert.That(values["Code"], Is.EqualTo("inner"), "the outer Code has a child, so it has no text of its own");
        Assert.That(values["Message"], Is.EqualTo("m1"));
        values = Read("<Error><Code/><Message> </Message><Code>Throttling</Code><Message>Rate exceeded</Message><RequestId/></Error>", out error);
        Assert.That(error, Is.Null);
        Assert.That(values["Code"], Is.EqualTo("Throttling"), "an empty Code does not hide the one that follows");
        Assert.That(values["Message"], Is.EqualTo("Rate exceeded"));
        Assert.That(values["RequestId"], Is.EqualTo(""));
    }

    [TestCase("<!DOCTYPE Error [<!ENTITY x \"boom\">]><Error><Code>&x;</Code></Error>", "line 1, position 1: a DTD or declaration, which is not accepted")]
    [TestCase("<Error><Code>A</Message></Error>", "line 1, position 15: the end tag </Message> does not match <Code>")]
    [TestCase("<Error>\n  <Code>A</Code>\n  <Message>cut", "line 3, position 15: the document ends inside <Message>")]
    [TestCase("<Error/><Error/>", "line 1, position 9: a second root element")]
    [TestCase("<Error><Code>&nbsp;</Code></Error>", "line 1, position 14: an unknown or unterminated entity (&...;)")]
    [TestCase("<Error><Code>&#0;</Code></Error>", "line 1, position 14: an unknown or unterminated entity (&...;)")]
    [TestCase("junk<Error/>", "line 1, position 1: text outside the root element")]
    [TestCase("", "line 1, position 1: there is no root element")]
    [TestCase("<Error><Code>a < b</Code></Error>", "line 1, position 16: a '<' that starts no element (write it as &lt;)")]
    [TestCase("<Error><!-- never closed </Error>", "line 1, position 8: a comment that is not closed")]
    [TestCase("<Error></Error></Error>", "line 1, position 16: an end tag </…> with no element open")]
    public void RefusesMalformedXmlSayingWhereAndWhy(string xml, string expected)
    {
        Read(xml, out var error);
        Assert.That(error, Is.EqualTo(expected));
        Assert.That(() => Reference(xml, out _), Throws.InstanceOf<XmlException>(), "System.Xml refuses it too");
    }

    [Test]
    public void KeepsWhatWasReadBeforeAFault()
    {
        var values = Read("<Error><Code>Throttling</Code><Message>Rate exceeded", out var error);
        Assert.That(error, Does.StartWith("line 1, position 53: the document ends inside <Message>"));
        Assert.That(values, Is.EqualTo(new Dictionary<string, string> { ["Code"] = "Throttling" }));
    }

    [Test]
    public void CountsPositionsInCharactersNotBytes()
    {
        Read("<Error><Message>é€😀</Mess></Error>", out var error);
        Assert.That(error, Is.EqualTo("line 1, position 20: the end tag </…> does not match <Message>"));
    }

    // In a malformed answer whatever follows a stray '<' reads as a name: only the names asked for are ever shown.
    [Test]
    public void NeverShowsANameItWasNotAskedFor()
    {
        const string secret = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY";
        Read($"<R><SecretAccessKey><{secret}></SecretAccessKey></R>", out var error);
        Assert.That(error, Is.EqualTo("line 1, position 61: the end tag </SecretAccessKey> does not match <…>"));
        Assert.That(error, Does.Not.Contain(secret));
        Read($"<{new string('N', 100_000)}>", out error);
        Assert.That(error, Is.EqualTo("line 1, position 100003: the document ends inside <…>"));
    }

    // Every truncation of documents with each kind of markup: malformed exactly when System.Xml says so, and the
    // leaves read from a well-formed one the same.
    [Test]
    public void AgreesWithSystemXmlOnEveryTruncation()
    {
        string[] documents =
        [
            "\uFEFF<?xml version=\"1.0\"?>\r\n<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult>" +
            "<Credentials><AccessKeyId>ASIAEXAMPLE</AccessKeyId><SecretAccessKey>wJalr/K7MDENG+bPxRfiCY</SecretAccessKey>" +
            "<Expiration>2026-11-29T12:00:00Z</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>\n",
            "<Error a=\"x > y\" b='q'>\n <!-- c --> <Code>C&amp;D</Code>\r\n <Message><![CDATA[x<y]]> &#x20AC;</Message><?pi data?><RequestId/></Error>  ",
        ];
        int wellFormed = 0, malformed = 0;
        foreach (string document in documents)
        {
            for (int length = 0; length <= document.Length; length++)
            {
                string prefix = document[..length];
                var ours = Read(prefix, out var error);
                Dictionary<string, string>? theirs;
                try { theirs = Reference(prefix, out _); }
                catch (XmlException) { theirs = null; }
                Assert.That(error is null, Is.EqualTo(theirs is not null), $"well-formed or not, at length {length}: {error}");
                if (theirs is not null) Assert.That(ours, Is.EqualTo(theirs), $"leaves at length {length}");
                if (theirs is null) malformed++; else wellFormed++;
            }
        }
        // Each document whole, or cut in its trailing whitespace (one character, then two), is well-formed; any other cut is not.
        Assert.That((wellFormed, malformed), Is.EqualTo((5, documents.Sum(d => d.Length) + 2 - 5)));
    }

    // Random documents of nested elements, text with entities, CDATA and comments, against System.Xml's reading.
    [Test]
    public void AgreesWithSystemXmlOnRandomDocuments()
    {
        var random = new Random(20261129);
        for (int n = 0; n < 2_000; n++)
        {
            var xml = new StringBuilder();
            Element(xml, random, depth: 0);
            var ours = Read(xml.ToString(), out var error);
            Assert.That(error, Is.Null, xml.ToString());
            Assert.That(ours, Is.EqualTo(Reference(xml.ToString(), out _)), xml.ToString());
        }
    }

    private static void Element(StringBuilder xml, Random random, int depth)
    {
        string name = Names[random.Next(Names.Length)];
        string prefix = random.Next(4) == 0 ? "p:" : "";
        xml.Append('<').Append(prefix).Append(name);
        if (prefix.Length > 0 || random.Next(3) == 0) xml.Append(" xmlns:p=\"urn:p\" k='v>'");
        if (random.Next(8) == 0) { xml.Append("/>"); return; }
        xml.Append('>');
        for (int part = random.Next(4); part > 0; part--)
        {
            switch (random.Next(depth < 3 ? 6 : 5))
            {
                case 0: xml.Append(" text ").Append(random.Next(100)); break;
                case 1: xml.Append(random.Next(2) == 0 ? "&amp;&lt;" : "&#x263A;&#233;"); break;
                case 2: xml.Append("<![CDATA[<raw> & ]]>"); break;
                case 3: xml.Append("<!-- note -->"); break;
                case 4: xml.Append("\r\n  "); break;
                default: Element(xml, random, depth + 1); break;
            }
        }
        xml.Append("</").Append(prefix).Append(name).Append('>');
    }

    // The same reading done by System.Xml's reader (no DTD; of each wanted name, the first non-empty leaf, trimmed, every
    // piece of its character data kept, whitespace-only pieces too): what AwsXml must agree with.
    private static Dictionary<string, string> Reference(string xml, out int elements)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        elements = 0;
        var settings = new XmlReaderSettings { DtdProcessing = DtdProcessing.Prohibit, XmlResolver = null, IgnoreComments = true };
        using var reader = XmlReader.Create(new MemoryStream(Encoding.UTF8.GetBytes(xml)), settings);
        var open = new Stack<(string Name, StringBuilder Text, bool HasChild)>();
        while (reader.Read())
        {
            switch (reader.NodeType)
            {
                case XmlNodeType.Element:
                    elements++;
                    if (open.Count > 0) { var parent = open.Pop(); open.Push(parent with { HasChild = true }); }
                    if (reader.IsEmptyElement) Keep(values, reader.LocalName, "");
                    else open.Push((reader.LocalName, new StringBuilder(), false));
                    break;
                case XmlNodeType.EndElement:
                    var (name, text, hasChild) = open.Pop();
                    if (!hasChild) Keep(values, name, text.ToString().Trim());
                    break;
                case XmlNodeType.Text or XmlNodeType.CDATA or XmlNodeType.Whitespace or XmlNodeType.SignificantWhitespace:
                    if (open.Count > 0) open.Peek().Text.Append(reader.Value);
                    break;
            }
        }
        return values.Where(v => Names.Contains(v.Key)).ToDictionary(v => v.Key, v => v.Value, StringComparer.Ordinal);
    }

    private static void Keep(Dictionary<string, string> values, string name, string text)
    {
        if (!values.TryGetValue(name, out var kept) || kept.Length == 0) values[name] = text;
    }
}
