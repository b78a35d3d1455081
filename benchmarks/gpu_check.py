"""One prepared GPU check of openmm-ani: CUDA parity, MD speed, training and fe-correct on a GPU.

Runs in one call of at most ~8 minutes on a fresh GPU machine that holds only the working tree:

1. ``install``: ``pip install -e ".[cuda12,test,training]"`` and the TorchANI test reference
   (``--wheels DIR`` installs offline from carried wheels; ``--skip-install`` uses the environment as it is).
2. ``environment``: Python, torch (CUDA device), OpenMM platforms, openmmtorch; flags a stack that
   cannot work (torch >= 2.10 or OpenMM >= 8.6 with the openmmtorch 1.5 wheel).
3. ``parity``: energies and forces of the bundled ANI-1ccx on the CUDA platform against Reference,
   single and double precision (p-xylene, alanine dipeptide ML/MM in TIP3P, a ~2.5k-atom periodic
   water box), with the CPU tests' tolerances.
4. ``md_speed``: ms/step and ns/day on CUDA for those systems and the T4 lysozyme ML/MM demo, next
   to openmm-ml's own ANI on the same GPU in the same run.
5. ``training``: the training tests that skip without CUDA, and training-step throughput on CUDA
   (``benchmarks/bench_training.py``; for scale, the TorchANI paper quotes about 280k
   conformations/s for NeuroChem on an RTX 2080).
6. ``fe_correct``: a short ``openmm-ani fe-correct`` on the GPU and the ms/step of its λ-window MD.

Writes ``gpu_check.json`` and ``gpu_check.md`` into ``--out`` (default: ``$OUT``, else ``gpu_check_out``).
``--dry-run`` (what CI runs) performs the CPU parts: the environment report, the parity step with
the CPU platform in place of CUDA on the small systems, and builds every other step's inputs; each
step that needs CUDA is recorded as skipped with the reason.

Usage::

    python benchmarks/gpu_check.py [--dry-run] [--skip-install] [--wheels DIR] [--out DIR] [--steps N]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Any, Callable, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

#: The NeuroChem figure quoted for scale (TorchANI paper, Gao et al. 2020: training on an RTX 2080).
NEUROCHEM_CONFORMATIONS_PER_S = 280_000


def run(command: List[str], timeout: float, **kwargs: Any) -> Dict[str, Any]:
    """Run a command; its exit status, duration and the tail of its output."""
    start = time.perf_counter()
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT, **kwargs)
        code, output = result.returncode, result.stdout + result.stderr
    except subprocess.TimeoutExpired as error:
        code, output = -1, f"timed out after {timeout} s: {error}"
    return {"command": " ".join(command), "exit_status": code, "seconds": time.perf_counter() - start, "output_tail": output[-3000:]}


def step_environment(args: argparse.Namespace) -> Dict[str, Any]:
    import platform

    import torch

    info: Dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "cuda_available": bool(torch.cuda.is_available())}
    if torch.cuda.is_available():
        info["device"] = torch.cuda.get_device_name(0)
    import openmm

    info["openmm"] = openmm.version.version
    info["platforms"] = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
    from importlib.metadata import version

    info["openmmtorch"] = version("openmmtorch")
    info["problems"] = stack_problems(torch.__version__, openmm.version.version, info["openmmtorch"])
    return info


def _minor(version: str) -> tuple:
    return tuple(int(v) for v in version.split("+")[0].split(".")[:2])


def stack_problems(torch_version: str, openmm_version: str, openmmtorch_version: str) -> List[str]:
    """Why this torch/OpenMM/openmmtorch combination cannot run openmm-ani (empty when it can)."""
    problems = []
    if openmmtorch_version.startswith("1.5") and _minor(torch_version) >= (2, 10):
        problems.append(f"torch {torch_version} is too new for openmmtorch 1.5 (needs torch < 2.10)")
    if openmmtorch_version.startswith("1.5") and _minor(openmm_version) >= (8, 6):
        problems.append(f"OpenMM {openmm_version}: the openmmtorch 1.5 wheel needs OpenMM < 8.6 to copy TorchForces")
    return problems


def step_install(args: argparse.Namespace) -> Dict[str, Any]:
    if args.dry_run or args.skip_install:
        return {"skipped": "dry run" if args.dry_run else "--skip-install: the environment is used as it is"}
    pip = [sys.executable, "-m", "pip", "install", "--quiet"]
    if args.wheels:
        pip += ["--no-index", "--find-links", args.wheels]
    install = run(pip + ["-e", ".[cuda12,test,training]"], timeout=360)
    reference = run([sys.executable, "scripts/setup_test_reference.py"], timeout=120)
    return {"install": install, "test_reference": reference, "ok": install["exit_status"] == 0}


def step_parity(args: argparse.Namespace) -> Dict[str, Any]:
    import gpu_cases

    platform = "CUDA" if args.cuda else "CPU"
    names = gpu_cases.GPU_CASES[:3] if args.cuda else gpu_cases.GPU_CASES[:2]
    rows = []
    for name in names:
        case = gpu_cases.build_case(name)
        for precision in ("single", "double"):
            rows.append(gpu_cases.parity(case, platform, precision))
    result: Dict[str, Any] = {"platform": platform, "rows": rows, "ok": all(r["ok"] for r in rows)}
    if not args.cuda:
        gpu_cases.build_case(gpu_cases.BOX_CASE).build("single")  # built, not evaluated: its Reference double run takes minutes on 2 cores
        result["skipped"] = "no CUDA device: CPU platform compared with Reference instead; the water box was built only"
    return result


def step_md_speed(args: argparse.Namespace) -> Dict[str, Any]:
    import gpu_cases

    if not args.cuda:
        for name in gpu_cases.GPU_CASES:
            gpu_cases.build_case(name)
        return {"skipped": "no CUDA device: the systems were built, no MD timed"}
    rows = []
    with_peer = gpu_cases.peer_available()
    for name in gpu_cases.GPU_CASES:
        rows.extend(gpu_cases.speed_rows(gpu_cases.build_case(name, with_peer), "CUDA", args.steps, with_peer))
    return {"rows": rows, "peer": "openmm-ml (TorchANI)" if with_peer else "not installed"}


def step_training(args: argparse.Namespace) -> Dict[str, Any]:
    if not args.cuda:
        collected = run([sys.executable, "-m", "pytest", "-q", "--collect-only", "tests/training/test_training_loop.py"], timeout=300)
        return {"skipped": "no CUDA device: the CUDA training tests were collected, not run", "collect": collected}
    tests = run([sys.executable, "-m", "pytest", "-q", "-rs", "tests/training", "-k", "cuda"], timeout=300)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "training.json")
        bench = run([sys.executable, "benchmarks/bench_training.py", "--repeats", "2", "--json", path], timeout=300)
        throughput = json.load(open(path)) if os.path.exists(path) else None
    return {"tests": tests, "benchmark": bench, "throughput": throughput,
            "neurochem_rtx2080_conformations_per_s": NEUROCHEM_CONFORMATIONS_PER_S,
            "ok": tests["exit_status"] == 0 and bench["exit_status"] == 0}


def fe_correct_command(output: str, platform: str) -> List[str]:
    """A short fe-correct on alanine dipeptide (GB) with both legs the same system."""
    import gpu_cases

    prmtop = gpu_cases.openmmtools_data("alanine-dipeptide-gbsa", "alanine-dipeptide.prmtop")
    crd = gpu_cases.openmmtools_data("alanine-dipeptide-gbsa", "alanine-dipeptide.crd")
    atoms = ",".join(str(i) for i in range(22))
    legs = []
    for leg in ("complex", "solvent"):
        legs += [f"--{leg}-prmtop", prmtop, f"--{leg}-coords", crd, f"--{leg}-ligand-atoms", atoms]
    return [sys.executable, "-m", "openmm_ani", "fe-correct", *legs, "--output", output, "--platform", platform,
            "--n-states", "4", "--n-iterations", "50", "--steps-per-iteration", "250", "--n-switches", "0",
            "--no-progress"]


def step_fe_correct(args: argparse.Namespace) -> Dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        command = fe_correct_command(os.path.join(folder, "fe"), "CUDA")
        if not args.cuda:
            parsed = run([sys.executable, "-m", "openmm_ani", "fe-correct", "--help"], timeout=120)
            return {"skipped": "no CUDA device: the command was prepared, not run", "command": " ".join(command),
                    "help_exit_status": parsed["exit_status"]}
        result = run(command, timeout=240)
        results_path = os.path.join(folder, "fe", "results.json")
        results = json.load(open(results_path)) if os.path.exists(results_path) else None
    steps = 2 * 50 * 250 * 4  # legs x iterations x steps x replicas
    return {"run": result, "results": results, "md_steps": steps,
            "ms_per_step_upper_bound": 1000.0 * result["seconds"] / steps, "ok": result["exit_status"] == 0}


STEPS: Dict[str, Callable[[argparse.Namespace], Dict[str, Any]]] = {
    "install": step_install, "environment": step_environment, "parity": step_parity, "md_speed": step_md_speed,
    "training": step_training, "fe_correct": step_fe_correct,
}


def markdown(report: Dict[str, Any]) -> str:
    """The report as Markdown tables."""
    lines = ["# openmm-ani GPU check", "", f"mode: {report['mode']}, total {report['seconds']:.0f} s", ""]
    env = report["steps"]["environment"]
    lines += [f"- {key}: {value}" for key, value in env.items() if key != "step_seconds"] + [""]
    lines += ["| step | status | seconds |", "|---|---|---:|"]
    for name, step in report["steps"].items():
        status = "failed" if "error" in step else ("skipped: " + step["skipped"] if "skipped" in step else "ok" if step.get("ok", True) else "not ok")
        lines.append(f"| {name} | {status} | {step.get('step_seconds', 0):.1f} |")
    parity = report["steps"].get("parity", {})
    if parity.get("rows"):
        lines += ["", f"## Parity: {parity['platform']} vs Reference", "",
                  "| case | precision | atoms | dE kJ/mol (tol) | max dF kJ/mol/nm (tol) | ok |", "|---|---|---:|---:|---:|---|"]
        for r in parity["rows"]:
            lines.append(f"| {r['case']} | {r['precision']} | {r['atoms']} | {r['energy_difference']:.2e} ({r['energy_tolerance']:.1e}) "
                         f"| {r['max_force_difference']:.2e} ({r['force_tolerance']:.1e}) | {r['ok']} |")
    speed = report["steps"].get("md_speed", {})
    if speed.get("rows"):
        lines += ["", "## MD speed on CUDA (single precision, 1 fs)", "", "| case | engine | ms/step | ns/day |", "|---|---|---:|---:|"]
        for r in speed["rows"]:
            lines.append(f"| {r['case']} | {r['engine']} | {r['ms_per_step']:.3f} | {r['ns_per_day']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: List[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU parts only; steps needing CUDA are skipped, saying so")
    parser.add_argument("--skip-install", action="store_true", help="use the current environment as it is")
    parser.add_argument("--wheels", help="install offline from this folder of wheels")
    parser.add_argument("--out", default=os.environ.get("OUT") or "gpu_check_out", help="output folder (default $OUT)")
    parser.add_argument("--steps", type=int, default=300, help="timed MD steps per speed row (default 300)")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    start = time.perf_counter()
    report: Dict[str, Any] = {"mode": "dry run" if args.dry_run else "full", "steps": {}}
    args.cuda = False
    for name, step in STEPS.items():
        began = time.perf_counter()
        try:
            result = step(args)
        except Exception as error:  # one failing step must not hide the others: record it and go on
            result = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()[-3000:]}
        result["step_seconds"] = time.perf_counter() - began
        report["steps"][name] = result
        if name == "environment":
            args.cuda = bool(result.get("cuda_available")) and "CUDA" in result.get("platforms", []) and not args.dry_run
        print(f"gpu_check: {name}: {'error' if 'error' in result else 'skipped' if 'skipped' in result else 'done'} "
              f"({result['step_seconds']:.1f} s)", flush=True)
    report["seconds"] = time.perf_counter() - start
    with open(os.path.join(args.out, "gpu_check.json"), "w") as stream:
        json.dump(report, stream, indent=1, default=str)
    with open(os.path.join(args.out, "gpu_check.md"), "w") as stream:
        stream.write(markdown(report))
    failed = [name for name, step in report["steps"].items() if "error" in step or step.get("ok") is False]
    print(f"gpu_check: wrote {args.out}/gpu_check.json and gpu_check.md; failed steps: {failed or 'none'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
