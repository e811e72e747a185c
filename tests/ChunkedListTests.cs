using System.Diagnostics;
using System.Reflection;
using NUnit.Framework;

namespace SigV4Lite.Tests;

// The list a collect-all fan-out returns: items set at their input position in any order, kept in chunks of 1,024,
// the first growing from 16.
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
    public void AFirstChunkStillSmallIsMadeWholeWhenAnItemLandsPastIt()
    {
        var list = new ChunkedList<string?>();
        for (int i = 0; i < 10; i++) list.Set(i, "item " + i);
        list.Set(2_500, "far");
        Assert.That(list[9], Is.EqualTo("item 9"), "kept when the first chunk grew");
        Assert.That(list[100], Is.Null);
        Assert.That(list[1_023], Is.Null);
        Assert.That(list[2_500], Is.EqualTo("far"));
        Assert.That(list.Count(item => item is not null), Is.EqualTo(11));
    }

    [Test]
    public void AFewItemsTakeAFewSlotsNotAWholeChunk()
    {
        var list = new ChunkedList<(long, long, long, long, long)>(); // 40 B, as an AwsOutcome
        list.Set(0, default); // the chunk list's own array, whatever the item size
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 1; i < 3; i++) list.Set(i, (i, i, i, i, i));
        long after = GC.GetAllocatedBytesForCurrentThread();
        Assert.That(after - before, Is.EqualTo(0), "three items fit in the first 16 slots");
        var fresh = new ChunkedList<(long, long, long, long, long)>();
        before = GC.GetAllocatedBytesForCurrentThread();
        fresh.Set(0, default);
        Assert.That(GC.GetAllocatedBytesForCurrentThread() - before, Is.LessThan(1_024), "16 slots of 40 B and the chunk list, not 1,024 slots (40 KB)");
    }

    [Test]
    public void AnEmptyListHasNothingToReadOrCopy()
    {
        var list = new ChunkedList<int>();
        Assert.That(list, Is.Empty);
        Assert.That(list.IndexOf(0), Is.EqualTo(-1));
        list.CopyTo([], 0);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => _ = list[0]);
        Assert.That(e!.Message, Does.Contain("less than Count (0)"));
    }

    [Test]
    public void AnIndexOutsideTheListIsRefusedWithItsRange()
    {
        var list = Filled(Enumerable.Range(0, 5));
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => _ = list[5]);
        Assert.That(e!.ParamName, Is.EqualTo("index"));
        Assert.That(e.Message, Does.Contain("at least 0 and less than Count (5)"));
        e = Assert.Throws<ArgumentOutOfRangeException>(() => _ = list[-1]);
        Assert.That(e!.Message, Does.Contain("at least 0 and less than Count (5)"));
        // The first chunk has 16 slots: an index inside it but past Count is still refused.
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = list[10]);
    }

    // 2,048: two whole chunks, so that copying one item too many (or too few) of the last chunk shows.
    [TestCase(2_048)]
    [TestCase(2_500)]
    public void CopyToCopiesEveryChunkAtTheOffset(int count)
    {
        var list = Filled(Enumerable.Range(0, count));
        var copy = new int[count + 3];
        copy[^1] = -1;
        list.CopyTo(copy, 2);
        Assert.That(copy.Skip(2).Take(count), Is.EqualTo(list));
        Assert.That(copy.Take(2), Is.EqualTo(new[] { 0, 0 }));
        Assert.That(copy[^1], Is.EqualTo(-1), "nothing written past the list's items");
    }

    [Test]
    public void CopyToRefusesAnArrayTooSmallOrAnOffsetOutsideIt()
    {
        var list = Filled(Enumerable.Range(0, 2_500));
        var e = Assert.Throws<ArgumentException>(() => list.CopyTo(new int[2_500], 1));
        Assert.That(e!.ParamName, Is.EqualTo("array"));
        Assert.That(e.Message, Does.Contain("needs at least 2501 elements").And.Contain("it has 2500"));
        var outside = Assert.Throws<ArgumentOutOfRangeException>(() => list.CopyTo(new int[10], -1));
        Assert.That(outside!.ParamName, Is.EqualTo("arrayIndex"));
        Assert.That(outside.Message, Does.Contain("non-negative"));
        outside = Assert.Throws<ArgumentOutOfRangeException>(() => Filled([]).CopyTo(new int[2], 3));
        Assert.That(outside!.ParamName, Is.EqualTo("arrayIndex"));
        Assert.That(outside.Message, Does.Contain("less than or equal to '2'"));
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

    [Test]
    public void TheDebuggerIsShownTheItemsNotTheChunks()
    {
        var list = Filled(Enumerable.Range(0, 1_500));
        var proxy = typeof(ChunkedList<int>).GetCustomAttribute<DebuggerTypeProxyAttribute>();
        Assert.That(proxy, Is.Not.Null);
        var viewType = typeof(ChunkedList<int>).Assembly.GetType(proxy!.ProxyTypeName.Split(',')[0])!.MakeGenericType(typeof(int));
        var view = Activator.CreateInstance(viewType, list)!;
        var items = (int[])viewType.GetProperty("Items")!.GetValue(view)!;
        Assert.That(items, Is.EqualTo(list));
        Assert.That(typeof(ChunkedList<int>).GetCustomAttribute<DebuggerDisplayAttribute>()!.Value, Is.EqualTo("Count = {Count}"));
    }

    [Test]
    public void EveryChangeThroughIListIsRefused()
    {
        IList<int> list = Filled(Enumerable.Range(0, 3));
        Assert.That(list.IsReadOnly, Is.True);
        foreach (var change in new Action[] { () => list.Add(1), () => list.Insert(0, 1), () => list.Remove(0), () => list.RemoveAt(0), () => list.Clear(), () => list[0] = 1 })
        {
            var e = Assert.Throws<NotSupportedException>(() => change());
            Assert.That(e!.Message, Does.Contain("read-only").And.Contain("ToList"));
        }
        Assert.That(list, Is.EqualTo(new[] { 0, 10, 20 }), "unchanged");
    }
}
