"""`cpbench report`: files a browser opens with their plots, sections that name missing commands."""

import json
import shutil
import subprocess

import numpy as np

from test_cli_recommend import calibrated  # noqa: F401 - the fixture: a workspace with fitted models

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_report_writes_html_markdown_and_plots(cli, calibrated):  # noqa: F811
    done = cli("report", "--name", "r1", "-w", str(calibrated.root), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    folder = calibrated.reports_dir / "r1"
    html = (folder / "index.html").read_text()
    markdown = (folder / "report.md").read_text()
    images = [img for s in report["sections"] for img in s["images"]]
    assert len(images) >= 5
    for img in images:
        assert (folder / img).stat().st_size > 5000 and f"src='{img}'" in html and f"]({img})" in markdown
    titles = {s["title"].split(":")[0] for s in report["sections"]}
    assert {"Time model", "Precision model P(T)", "Recommendations"} <= titles
    cuda = next(s for s in report["sections"] if "cuda" in s["title"])
    assert any("cpbench time --device cuda" in m and "cpbench fit --device cuda" in m for m in cuda["missing"])
    claims = {row[0] for row in report["claims"]}
    assert "run time proportional to complexity, error under 2.5 %" in claims
    assert any("10× less complexity" in c for c in claims)
    shown = cli("report", "--name", "r2", "-w", str(calibrated.root))
    assert shown.returncode == 0 and "index.html" in shown.stdout and "papers' claims" in shown.stdout


def test_report_on_an_empty_workspace_says_what_to_run(cli, tmp_path):
    done = cli("report", "--name", "empty", "-w", str(tmp_path), "--json")
    assert done.returncode == 0, done.stderr
    sections = json.loads(done.stdout)["sections"]
    missing = " ".join(m for s in sections for m in s["missing"])
    assert "cpbench time --device" in missing and "cpbench export" in missing
    assert (tmp_path / "reports" / "empty" / "index.html").is_file()
    bad = cli("report", "--name", "../x", "-w", str(tmp_path))
    assert bad.returncode == 2 and "--name" in bad.stderr


def test_the_html_renders_with_its_images_in_headless_chromium(cli, calibrated, tmp_path):  # noqa: F811
    assert BROWSER, "headless Chromium is needed for this test: 'make browser' (Debian: apt-get install chromium chromium-driver)"
    assert cli("report", "--name", "shown", "-w", str(calibrated.root)).returncode == 0
    page = calibrated.reports_dir / "shown" / "index.html"
    shot = tmp_path / "shot.png"
    subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1200,9000",
                    f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120, check=True)
    from matplotlib import image

    pixels = image.imread(shot)[..., :3]
    assert pixels.std() > 0.05, "the screenshot is blank"
    # matplotlib's default blue (31, 119, 180) only appears when the PNG plots were loaded
    blue = np.all(np.abs(pixels - np.array([31, 119, 180]) / 255) < 0.06, axis=-1)
    assert blue.sum() > 200, "the plots did not load from their relative paths"


def test_another_machines_fit_is_never_shown_as_measured_here(cli, tmp_path):
    """An imported fit of another machine and the shipped calibrations: the report names them as
    theirs, and the time section (this machine's fits only) says none was made here."""
    from cpbench.report.sections import build_report
    from cpbench.timing.profiles import SHIPPED
    from cpbench.workspace.folder import Workspace
    from test_cli_fit import add_run, copy_hand_written, random_configs, truth

    ws = Workspace(tmp_path)
    ws.profiles_dir.mkdir(parents=True)
    copy_hand_written(SHIPPED / "cpu-1thread.toml", ws.profiles_dir / "cpu-1thread.toml")
    configs = random_configs(30, 3)
    add_run(ws, "cpu-1thread", configs, truth(configs), hardware_id="elsewhere-machine")
    assert cli("fit", "--device", "cpu-1thread", "--machine", "elsewhere-machine", "-w", str(tmp_path)).returncode == 0
    report = build_report(ws, "provenance")
    markdown = (report.folder / "report.md").read_text()
    assert "no fit of 'cpu-1thread' was made on this machine" in markdown
    rows = [row for row in report.claims if "elsewhere-machine" in row[2]]
    assert rows and all("another machine" in row[2] for row in rows)
    shipped = [row for row in report.claims if "shipped reference calibration" in row[2]]
    assert shipped and all("not measured here" in row[2] for row in shipped)
