"""Accuracy of the forecast module on a real series: the weekly Mauna Loa
CO2 record (March 1958 - December 2001, 2284 weeks) that Debian's
python3-statsmodels ships as statsmodels/datasets/co2/co2.csv, read here
without importing statsmodels.

For each holdout of 52 weeks, the forecast_eval driver (the module with its
defaults: changepoint_range 0.8, 25 changepoints, yearly seasonality by
the auto rule, 1000 samples, 80% interval, seed 0) fits every earlier week
and forecasts 52 weeks at freq "W". The 59 missing weeks (all before 1986)
are dropped from the fit rather than interpolated: the model takes
irregular timestamps, so nothing needs inventing. The baseline is the
seasonal-naive forecast, the value 52 weeks earlier (interpolated in time
were it missing; it is not in these holdouts).

Asserted: on the last year (2001) MAPE <= 0.7 x the naive MAPE and the 80%
interval covering 70%..90% of the weeks; on the year before (2000) the
MAPE criterion again, and the coverage criterion over both years' 104
weeks. One year's coverage is a weak statistic: the errors of a year-ahead
forecast are strongly correlated week to week (one level offset moves all
52 together), so a single year swings far more than binomial noise; 2000,
forecast unusually well, is covered at about 94%.

JOBHUB_BUILD_DIR names the build (default ./build), as in conftest.py.
"""
import csv
import datetime
import importlib.util
import math
import os
import subprocess

import pytest

from conftest import BUILD

DRIVER = os.path.join(BUILD, "tests", "forecast", "forecast_eval")
WEEK = 7 * 86400
HOLDOUT = 52


def co2_csv():
    spec = importlib.util.find_spec("statsmodels")
    if spec is None or spec.origin is None:
        pytest.fail("python3-statsmodels is missing (bash ci/setup installs "
                    "it)")
    path = os.path.join(os.path.dirname(spec.origin), "datasets", "co2",
                        "co2.csv")
    if not os.path.exists(path):
        pytest.fail("no %s in python3-statsmodels" % path)
    return path


def load_series():
    """[(unix seconds, ppm or NaN)] in date order."""
    points = []
    with open(co2_csv(), newline="") as f:
        reader = csv.reader(f)
        assert next(reader) == ["date", "co2"]
        for date, value in reader:
            day = datetime.datetime.strptime(date, "%Y%m%d").replace(
                tzinfo=datetime.timezone.utc)
            points.append((day.timestamp(),
                           float(value) if value else math.nan))
    assert len(points) == 2284
    return points


def naive_value(points, index):
    """The value at index, linearly interpolated in time if missing."""
    if not math.isnan(points[index][1]):
        return points[index][1]
    before = index - 1
    while math.isnan(points[before][1]):
        before -= 1
    after = index + 1
    while math.isnan(points[after][1]):
        after += 1
    (t0, v0), (t1, v1), t = points[before], points[after], points[index][0]
    return v0 + (v1 - v0) * (t - t0) / (t1 - t0)


def evaluate(points, holdout_index):
    """Forecasts holdout number holdout_index (1: the last 52 weeks, 2: the
    52 before) from every earlier point; returns (ours MAPE, naive MAPE,
    covered weeks, weeks)."""
    end = len(points) - HOLDOUT * (holdout_index - 1)
    start = end - HOLDOUT
    training = "".join("%d,%r\n" % (t, v) for t, v in points[:start]
                       if not math.isnan(v))
    run = subprocess.run([DRIVER, "--periods", str(HOLDOUT), "--freq", "W"],
                         input=training, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    forecast = [[float(field) for field in line.split(",")]
                for line in run.stdout.splitlines()]
    assert len(forecast) == HOLDOUT
    ours = naive = 0.0
    covered = weeks = 0
    for i, (ts, actual) in enumerate(points[start:end]):
        predicted_ts, yhat, lower, upper = forecast[i]
        assert abs(predicted_ts - ts) < 1, "forecast dates must be weekly"
        assert lower <= yhat <= upper
        if math.isnan(actual):
            continue
        weeks += 1
        ours += abs(yhat - actual) / actual
        naive += abs(naive_value(points, start + i - HOLDOUT) - actual) / actual
        covered += lower <= actual <= upper
    return ours / weeks, naive / weeks, covered, weeks


def test_co2_beats_seasonal_naive_with_calibrated_interval(capsys):
    points = load_series()
    results = {}
    for holdout_index, label in ((1, "2001 (last year)"),
                                 (2, "2000 (year before)")):
        ours, naive, covered, weeks = evaluate(points, holdout_index)
        results[holdout_index] = (ours, naive, covered, weeks)
        with capsys.disabled():
            print("\nforecast CO2 %s: MAPE ours %.4f%% naive %.4f%% "
                  "(ratio %.2f), 80%% interval coverage %.3f (%d/%d)"
                  % (label, 100 * ours, 100 * naive, ours / naive,
                     covered / weeks, covered, weeks))
        assert ours <= 0.7 * naive, (
            "%s: MAPE %.4f%% is not 30%% better than seasonal-naive %.4f%%"
            % (label, 100 * ours, 100 * naive))

    _, _, covered, weeks = results[1]
    assert 0.70 <= covered / weeks <= 0.90, (
        "last year: 80%% interval covers %d/%d" % (covered, weeks))
    covered = results[1][2] + results[2][2]
    weeks = results[1][3] + results[2][3]
    with capsys.disabled():
        print("forecast CO2 2000-2001: coverage %.3f (%d/%d)"
              % (covered / weeks, covered, weeks))
    assert 0.70 <= covered / weeks <= 0.90, (
        "both years: 80%% interval covers %d/%d" % (covered, weeks))
