using NUnit.Framework;

namespace SigV4Lite.Tests;

// The list a collect-all fan-out returns: items set at their input position in any order, kept in chunks of 1,024.
public class ChunkedListTests
{
    private static ChunkedList<int> Filled(IEnumerable<int> order)
    {
        var list = new ChunkedList<int>();
        foreach (int i in order) list.Set(i, i * 10);
        return list;
    }

    [Test]
    public void ItemsSetInAnyOrderReadBackInIndexOrderAcrossChunks()
    {
        var order = Enumerable.Range(0, 5_000).OrderBy(i => (i * 7_919) % 5_003).ToList(); // a fixed shuffle
        var list = Filled(order);
        Assert.That(list, Has.Count.EqualTo(5_000));
        Assert.That(list, Is.EqualTo(Enumerable.Range(0, 5_000).Select(i => i * 10)));
        Assert.That(list[1_023], Is.EqualTo(10_230));
        Assert.That(list[1_024], Is.EqualTo(10_240));
        Assert.That(list[4_999], Is.EqualTo(49_990));
    }

    [Test]
    public void AnItemSetFarAheadGrowsTheListAndLeavesTheDefaultBeforeIt()
    {
        var list = new ChunkedList<string?>();
        list.Set(3_000, "last");
        Assert.That(list, Has.Count.EqualTo(3_001));
        Assert.That(list[0], Is.Null);
        Assert.That(list[2_999], Is.Null);
        Assert.That(list[3_000], Is.EqualTo("last"));
        list.Set(0, "first");
        Assert.That(list, Has.Count.EqualTo(3_001), "setting an earlier item does not shrink or grow it");
        Assert.That(list[0], Is.EqualTo("first"));
    }

    [Test]
    public void AnIndexOutsideTheListIsRefusedWithItsRange()
    {
        var list = Filled(Enumerable.Range(0, 5));
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => _ = list[5]);
        Assert.That(e!.ParamName, Is.EqualTo("index"));
        Assert.That(e.Message, Does.Contain("less than Count (5)"));
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = list[-1]);
        // A chunk is 1,024 long: an index inside the first chunk but past Count is still refused.
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = list[1_000]);
    }

    [Test]
    public void CopyToCopiesEveryChunkAtTheOffsetAndRefusesTooSmallAnArray()
    {
        var list = Filled(Enumerable.Range(0, 2_500));
        var copy = new int[2_502];
        list.CopyTo(copy, 2);
        Assert.That(copy.Skip(2), Is.EqualTo(list));
        Assert.That(copy.Take(2), Is.EqualTo(new[] { 0, 0 }));
        var e = Assert.Throws<ArgumentException>(() => list.CopyTo(new int[2_500], 1));
        Assert.That(e!.ParamName, Is.EqualTo("array"));
        Assert.That(e.Message, Does.Contain("room for 2499").And.Contain("has 2500"));
        Assert.Throws<ArgumentOutOfRangeException>(() => list.CopyTo(copy, -1));
    }

    [Test]
    public void IndexOfAndContainsSearchEveryChunk()
    {
        var list = new ChunkedList<int>();
        for (int i = 0; i < 2_100; i++) list.Set(i, i + 1);
        Assert.That(list.IndexOf(2_100), Is.EqualTo(2_099));
        Assert.That(list.Contains(1_025), Is.True);
        Assert.That(list.IndexOf(2_101), Is.EqualTo(-1));
        Assert.That(list.Contains(0), Is.False, "the default slots after Count, in the last chunk, are not searched");
    }
}
