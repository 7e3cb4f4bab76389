using System.Diagnostics;
using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;
using OpenQA.Selenium.Interactions;
using Xunit.Abstractions;

namespace LeNetSharp.Tests.Web;

/// <summary>
/// A fact that needs Debian's chromium and chromium-driver: skipped, saying why, only when they are truly absent and
/// never when CI=true (there the test runs and fails, since .ci/run installs them).
/// </summary>
public sealed class ChromiumFactAttribute : FactAttribute
{
    public ChromiumFactAttribute()
    {
        if (Chromium.Missing() is { } missing && Environment.GetEnvironmentVariable("CI") != "true")
        {
            Skip = $"{missing} (apt-get install chromium chromium-driver); skipped outside CI only";
        }
    }
}

/// <summary>Finds the browser and its driver on PATH (normally /usr/bin) and starts them without any download.</summary>
internal static class Chromium
{
    public static string? Find(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Append("/usr/bin").Select(dir => Path.Combine(dir, name)).FirstOrDefault(File.Exists);

    public static string? Missing() =>
        Find("chromedriver") is null ? "chromedriver not found on PATH"
        : Find("chromium") is null ? "chromium not found on PATH"
        : null;

    public static ChromeDriver Start()
    {
        if (Missing() is { } missing) throw new InvalidOperationException($"{missing}: .ci/run installs chromium and chromium-driver with apt.");
        Environment.SetEnvironmentVariable("SE_OFFLINE", "true"); // Selenium Manager must never try to download a driver
        string driver = Find("chromedriver")!;
        var service = ChromeDriverService.CreateDefaultService(Path.GetDirectoryName(driver)!, Path.GetFileName(driver));
        service.HideCommandPromptWindow = true;
        service.SuppressInitialDiagnosticInformation = true;
        var options = new ChromeOptions { BinaryLocation = Find("chromium")! };
        options.AddArguments("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900");
        return new ChromeDriver(service, options, TimeSpan.FromMinutes(2));
    }
}

/// <summary>The page as a person uses it: draw with pointer actions in a real headless Chromium, read what it shows.</summary>
[Collection(WebCollection.Name)]
public sealed class BrowserTests(WebFixture web, ITestOutputHelper output)
{
    /// <summary>A hand-written 7 in the 280×280 canvas: a top bar, then a long slanted down-stroke.</summary>
    private static readonly (int X, int Y)[][] Seven =
    [
        [(78, 62), (110, 60), (150, 59), (190, 60), (206, 62), (196, 90), (180, 125), (163, 160), (148, 195), (136, 228)],
    ];

    /// <summary>A 1: one vertical stroke.</summary>
    private static readonly (int X, int Y)[][] One = [[(140, 50), (141, 120), (142, 190), (142, 235)]];

    private static void Draw(IWebDriver driver, PointerKind kind, (int X, int Y)[][] strokes)
    {
        var canvas = driver.FindElement(By.Id("pad"));
        var pointer = new PointerInputDevice(kind);
        var actions = new ActionBuilder();
        foreach (var stroke in strokes)
        {
            // Offsets are from the canvas centre; the canvas is drawn at its 280×280 size.
            actions.AddAction(pointer.CreatePointerMove(canvas, stroke[0].X - 140, stroke[0].Y - 140, TimeSpan.Zero));
            actions.AddAction(pointer.CreatePointerDown(MouseButton.Left));
            foreach (var (x, y) in Interpolate(stroke, step: 6))
            {
                actions.AddAction(pointer.CreatePointerMove(canvas, x - 140, y - 140, TimeSpan.FromMilliseconds(8)));
            }

            actions.AddAction(pointer.CreatePointerUp(MouseButton.Left));
        }

        ((IActionExecutor)driver).PerformActions(actions.ToActionSequenceList());
    }

    private static IEnumerable<(int X, int Y)> Interpolate((int X, int Y)[] points, int step)
    {
        for (int i = 1; i < points.Length; i++)
        {
            var (a, b) = (points[i - 1], points[i]);
            int n = Math.Max(1, (int)(Math.Sqrt(Math.Pow(b.X - a.X, 2) + Math.Pow(b.Y - a.Y, 2)) / step));
            for (int k = 1; k <= n; k++) yield return (a.X + ((b.X - a.X) * k / n), a.Y + ((b.Y - a.Y) * k / n));
        }
    }

    private static void WaitFor(IWebDriver driver, Func<bool> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > TimeSpan.FromSeconds(60))
            {
                throw new TimeoutException($"waited 60 s for {what}; page state '{State(driver)}', status '{driver.FindElement(By.Id("status")).Text}'");
            }

            Thread.Sleep(50);
        }
    }

    private static string State(IWebDriver driver) => driver.FindElement(By.TagName("body")).GetAttribute("data-state") ?? "";

    private static string[] BarValues(IWebDriver driver) =>
        driver.FindElements(By.CssSelector("#bars .track")).Select(t => t.GetAttribute("aria-valuenow") ?? "").ToArray();

    /// <summary>The sum of the red channel over each canvas matching <paramref name="selector"/>: 0 means all black.</summary>
    private static long[] Ink(IWebDriver driver, string selector) =>
        ((IReadOnlyCollection<object>)((IJavaScriptExecutor)driver).ExecuteScript(
            "return [...document.querySelectorAll(arguments[0])].map(c => {" +
            " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;" +
            " let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i]; return s; });", selector)!)
        .Select(Convert.ToInt64).ToArray();

    private async Task<ChromeDriver> OpenPageAsync()
    {
        var url = await web.KestrelAsync();
        var driver = Chromium.Start();
        driver.Navigate().GoToUrl(url);
        WaitFor(driver, () => driver.FindElement(By.Id("model")).Text.Contains("parameters"), "the model description");
        return driver;
    }

    [ChromiumFact]
    public async Task Drawing_a_7_with_the_mouse_shows_7()
    {
        using var driver = await OpenPageAsync();

        Draw(driver, PointerKind.Mouse, Seven);
        WaitFor(driver, () => State(driver) == "ready", "the prediction of the finished drawing");

        string screenshot = Path.Combine(AppContext.BaseDirectory, "screenshots", "draw-a-7.png");
        Directory.CreateDirectory(Path.GetDirectoryName(screenshot)!);
        driver.GetScreenshot().SaveAsFile(screenshot);
        output.WriteLine($"screenshot: {screenshot}");

        driver.FindElement(By.Id("label")).Text.Should().Be("7", "status: {0}", driver.FindElement(By.Id("status")).Text);
        var bars = BarValues(driver).Select(v => double.Parse(v, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        bars.Should().HaveCount(10);
        bars.Sum().Should().BeApproximately(100, 0.6);
        Array.IndexOf(bars, bars.Max()).Should().Be(7);
        driver.FindElement(By.CssSelector("#bars li.top .digit")).Text.Should().Be("7");
        Ink(driver, "#seen").Should().ContainSingle().Which.Should().BeGreaterThan(0, "the 28×28 image the network saw is shown");
        Ink(driver, "#maps canvas").Should().HaveCount(6).And.OnlyContain(s => s > 0, "the six conv1 feature maps are shown");
    }

    [ChromiumFact]
    public async Task Clear_with_the_keyboard_resets_the_drawing_the_bars_and_the_label()
    {
        using var driver = await OpenPageAsync();
        Draw(driver, PointerKind.Touch, One);
        WaitFor(driver, () => State(driver) == "ready", "the prediction of a touch drawing");
        driver.FindElement(By.Id("label")).Text.Should().NotBe("–");
        BarValues(driver).Should().Contain(v => v != "0");

        // The Clear button is reachable with Tab and works with Enter.
        var body = driver.FindElement(By.TagName("body"));
        for (int i = 0; i < 5 && driver.SwitchTo().ActiveElement().GetAttribute("id") != "clear"; i++) body.SendKeys(Keys.Tab);
        driver.SwitchTo().ActiveElement().GetAttribute("id").Should().Be("clear");
        driver.SwitchTo().ActiveElement().SendKeys(Keys.Enter);

        WaitFor(driver, () => State(driver) == "empty", "the cleared page");
        driver.FindElement(By.Id("label")).Text.Should().Be("–");
        BarValues(driver).Should().AllBe("0");
        driver.FindElements(By.CssSelector("#bars .pct")).Select(p => p.Text).Should().AllBe("0.0%");
        Ink(driver, "#pad, #seen, #maps canvas").Should().HaveCount(8).And.OnlyContain(s => s == 0);
    }
}
