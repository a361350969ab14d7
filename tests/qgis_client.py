"""Load gridgov's layers in headless QGIS with an HTTP Basic auth config, as a district office's QGIS 3.22 does.

Run by tests/test_qgis_client.py with Debian's /usr/bin/python3 (python3-qgis; not the project's venv) and
``QT_QPA_PLATFORM=offscreen``. Reads a JSON job on stdin::

    {"base": "http://127.0.0.1:8123", "username": "...", "password": "<access token>",
     "collections": ["grids", ...], "tile": {"z": 15, "x": ..., "y": ..., "layers": ["buildings", ...]}}

and prints one JSON line: the QGIS version, per collection whether the "WFS / OGC API – Features" layer is valid
and how many features QGIS read; per tile layer how many features QGIS decoded from the vector tile at
(z, x, y) (counted by a renderer that only counts), and any QGIS messages logged as errors.
"""

from __future__ import annotations

import json
import sys

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsAuthMethodConfig,
    QgsCoordinateReferenceSystem,
    QgsCredentialsNone,
    QgsDataSourceUri,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsRectangle,
    QgsVectorLayer,
    QgsVectorTileLayer,
    QgsVectorTileRenderer,
)
from qgis.PyQt.QtCore import QEventLoop, QSize


class CountingRenderer(QgsVectorTileRenderer):
    """Draws nothing; counts the features of the tile layers ``layers`` decoded for rendering (into ``counts``)."""

    def __init__(self, layers: list[str], counts: dict[str, set]) -> None:
        super().__init__()
        self.layers, self.counts = layers, counts

    def type(self) -> str:
        return "counting"

    def clone(self) -> QgsVectorTileRenderer:
        return CountingRenderer(self.layers, self.counts)

    def startRender(self, context, tile_zoom, tile_range) -> None:
        pass

    def stopRender(self, context) -> None:
        pass

    def usedAttributes(self, context) -> dict:
        return {name: set() for name in self.layers}

    def requiredLayers(self, context, tile_zoom) -> set:
        return set(self.layers)  # QGIS decodes only these

    def renderTile(self, tile, context) -> None:
        for layer in tile.layers():
            seen = self.counts.setdefault(layer, set())
            for feature in tile.layerFeatures(layer):
                seen.add((tile.id().column(), tile.id().row(), feature.id()))

    def writeXml(self, element, context) -> None:
        pass

    def readXml(self, element, context) -> None:
        pass


def basic_auth_config(username: str, password: str) -> str:
    """A Basic auth config in QGIS's auth database (as Settings → Authentication → Basic makes); its id."""
    manager = QgsApplication.authManager()
    manager.setMasterPassword("qgis-test-master", True)
    config = QgsAuthMethodConfig("Basic")
    config.setName("gridgov")
    config.setConfig("username", username)
    config.setConfig("password", password)
    if not manager.storeAuthenticationConfig(config):
        raise SystemExit("could not store the auth config")
    return config.id()


def tile_bounds(z: int, x: int, y: int) -> QgsRectangle:
    """The tile's extent in EPSG:3857 metres, shrunk a little so that neighbours are not fetched."""
    import math

    size = 2 * math.pi * 6378137 / 2 ** z
    west, north = -math.pi * 6378137 + x * size, math.pi * 6378137 - y * size
    inset = size * 0.05
    return QgsRectangle(west + inset, north - size + inset, west + size - inset, north - inset)


def main() -> None:
    job = json.load(sys.stdin)
    app = QgsApplication([], False)
    app.initQgis()
    no_prompt = QgsCredentialsNone()  # noqa: F841 (kept alive) a refused request fails instead of asking stdin
    errors: list[str] = []
    QgsApplication.messageLog().messageReceived.connect(
        lambda message, tag, level: errors.append(f"{tag}: {message}") if level >= Qgis.Warning else None)
    authcfg = basic_auth_config(job["username"], job["password"])
    out: dict = {"version": Qgis.QGIS_VERSION, "collections": {}, "tiles": {}}
    for name in job["collections"]:
        uri = QgsDataSourceUri()
        uri.setParam("url", job["base"] + "/ogc")
        uri.setParam("typename", name)
        uri.setAuthConfigId(authcfg)
        layer = QgsVectorLayer(uri.uri(False), name, "OAPIF")
        out["collections"][name] = {"valid": layer.isValid(),
                                    "features": sum(1 for _ in layer.getFeatures()) if layer.isValid() else None}
    if "tile" in job:
        z, x, y = job["tile"]["z"], job["tile"]["x"], job["tile"]["y"]
        uri = QgsDataSourceUri()
        uri.setParam("type", "xyz")
        uri.setParam("url", job["base"] + "/tiles/{z}/{x}/{y}.mvt")
        uri.setParam("zmin", "0")
        uri.setParam("zmax", str(z))
        uri.setAuthConfigId(authcfg)
        layer = QgsVectorTileLayer(bytes(uri.encodedUri()).decode(), "gridgov tiles")
        counts: dict[str, set] = {}
        layer.setRenderer(CountingRenderer(job["tile"]["layers"], counts))
        settings = QgsMapSettings()
        settings.setLayers([layer])
        settings.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:3857"))
        settings.setExtent(tile_bounds(z, x, y))
        settings.setOutputSize(QSize(512, 512))
        settings.setOutputDpi(96)
        render = QgsMapRendererParallelJob(settings)
        waiting = QEventLoop()  # not waitForFinished(): a 401 is handed to this thread's event loop, as in QGIS
        render.finished.connect(waiting.quit)
        render.start()
        waiting.exec_()
        out["tile_layer_valid"] = layer.isValid()
        out["tile_zoom"] = z
        out["tiles"] = {name: len(seen) for name, seen in counts.items()}
    out["errors"] = errors
    print(json.dumps(out))
    app.exitQgis()


if __name__ == "__main__":
    main()
