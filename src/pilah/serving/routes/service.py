"""Health, readiness, the model card and the regions: what a load balancer and a client ask first."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from pilah import __version__, guidance
from pilah.serving.schemas import ERRORS, Health, Region
from pilah.serving.service import Service, service_of

router = APIRouter()
ServiceDep = Annotated[Service, Depends(service_of)]


@router.get("/healthz", response_model=Health, tags=["service"])
async def healthz(service: ServiceDep) -> Health:
    """Liveness: always 200 while the process runs; `ready` turns true once the model is loaded."""
    if service.predictor is not None:
        return service.health()
    return Health(status="error" if service.load_error else "ok", ready=False, version=__version__)


@router.get("/readyz", response_model=Health, responses={503: ERRORS[503]}, tags=["service"])
async def readyz(service: ServiceDep):
    """Readiness: 200 once the model is loaded and its runtime passed the self-check, 503 before (or never,
    when no runtime gives the model's answers on this processor)."""
    service.require_ready()
    return service.health()


@router.get("/v1/model", responses={503: ERRORS[503]}, tags=["model"])
async def model_card(service: ServiceDep) -> dict[str, Any]:
    """The model card (classes, input, calibration, data, training, metrics, reference answers), the runtime
    that serves it and the result of its self-check on this processor."""
    predictor = service.require_ready()
    return {
        "name": predictor.name,
        "version": predictor.version,
        **predictor.card.as_dict(),
        "runtime": predictor.runtime,
        "self_check_result": predictor.check.to_dict(),
    }


@router.get("/v1/regions", response_model=list[Region], tags=["model"])
async def list_regions() -> list[Region]:
    """The regions whose disposal advice this server knows (`?region=` on the predict routes)."""
    packs = [guidance.pack(region) for region in guidance.regions()]
    return [Region(region=p.region, name=p.name, languages=p.languages) for p in packs]
