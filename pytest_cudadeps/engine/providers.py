"""Which wheel provides each CUDA library: the table per CUDA major, and the one resolver every item asks.

Used when the providing wheel is not installed (so its RECORD cannot tell us) and to
say what a torch whose metadata names no CUDA wheel really needs.  ``extra`` is the
``cuda-toolkit`` extra that installs it (CUDA 13 and later), which pins the versions
that belong to one CUDA release.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name

from pytest_cudadeps.engine.installers import install_command, reinstall_command_for

if TYPE_CHECKING:
    from pytest_cudadeps.engine.distributions import Distribution, Environment
    from pytest_cudadeps.engine.owners import Owners
    from pytest_cudadeps.engine.requirements import Demand
from pytest_cudadeps.tables.wheels import Provider, provider_for


@dataclass(frozen=True)
class Provision:
    """Which distribution provides a library for a root, how the root asks for it, and how to get it.

    ``chain`` is the requirement chain that declares it (``torch 2.14.1 > cuda-toolkit[cudart]
    13.0.3.0 > nvidia-cuda-runtime==13.0.96.*``, or ``torch 2.14.1 itself`` for the root's own
    files); ``wanted`` is what to install, pinned as declared; ``installed`` is the copy on the
    path, if any.  None of a root's requirements may declare it (``declared`` False): then
    ``wanted`` comes from the provider table, for the CUDA the root was built with.
    """

    key: str
    chain: str
    wanted: str
    installed: Distribution | None
    declared: bool = True

    def fix(self, installer: str) -> str:
        """Install what is missing; put back the files of what is installed (pip would skip it)."""
        if self.installed is not None and self.declared:  # an editable one is rebuilt from its source
            return reinstall_command_for(self.installed, self.wanted, installer)
        return install_command(installer, self.wanted)


class ProviderResolver:
    """The one answer to "which wheel provides this soname for this root, and what is the fix".

    Asked by the linkage findings and the load items alike, so that the same missing
    library gets the same command everywhere.
    """

    def __init__(
        self, env: Environment, root: Distribution, demands: Mapping[str, Sequence[Demand]], owners: Owners,
        cuda: str | None, extras: Mapping[str, Sequence[Demand]] | None = None,
    ) -> None:
        self.env, self.root, self.demands, self.owners, self.cuda = env, root, demands, owners, cuda
        # what only the root's own extras declare (onnxruntime-gpu[cuda]): declared, and the fix installs the extras
        self.extras = extras or {}
        self.cuda_major = int(cuda.split(".")[0]) if cuda and cuda.split(".")[0].isdigit() else None

    def table_provider(self, soname: str) -> Provider | None:
        return provider_for(soname, self.cuda_major)

    def _declared(self, key: str) -> Provision:
        """A missing wheel that only the root's own extra asks for comes back through that extra (``cupy-cuda13x[ctk]``)."""
        from pytest_cudadeps.engine.requirements import through_root_extra  # as in _from_extras

        demand, installed = self.demands[key][0], self.env.get(key)
        wanted = (through_root_extra(self.root, self.demands[key]) if installed is None else None) or demand.wanted()
        return Provision(key, demand.describe(), wanted, installed)

    def declared(self, soname: str, path: Path | None) -> Provision | None:
        """The declared requirement that provides ``soname``, in this order: the root itself (it owns
        the file, or ships a file of that name), the owner of the file the loader picks when declared,
        the provider table, cuda-toolkit's extra for it when cuda-toolkit is missing, any other declared
        distribution whose RECORD lists that soname."""
        provider = self.table_provider(soname)
        keys = [k for k in self.owners.owner_keys(path) if k in self.demands]
        keys += [canonicalize_name(provider.distribution)] if provider else []
        found = (self._root_itself(soname, path) or self._first_declared(keys) or self._by_missing_toolkit(provider)
                 or self._from_extras([*keys, *self._keys_shipping(soname)]))
        if found is not None or provider is not None:
            return found  # the table is authoritative: a wheel that ships its own copy elsewhere (triton) does not count
        return self._first_declared(self._keys_shipping(soname))

    def _root_itself(self, soname: str, path: Path | None) -> Provision | None:
        """The root, when it owns the file or ships a file of that name."""
        root = self.root
        if root.key in self.owners.owner_keys(path) or any(
                d.key == root.key for _, d in self.owners.files_named(soname)):
            return Provision(root.key, f"{root} itself", f"{root.name}=={root.version}", root)
        return None

    def _first_declared(self, keys: Sequence[str]) -> Provision | None:
        """The first of ``keys`` that a requirement of the root declares."""
        return next((self._declared(key) for key in keys if key in self.demands), None)

    def _by_missing_toolkit(self, provider: Provider | None) -> Provision | None:
        """cuda-toolkit itself is missing, so its extras could not be followed; it still declares the wheel."""
        toolkit = self._toolkit_demand(provider)
        if provider is None or toolkit is None:
            return None
        from pytest_cudadeps.engine.requirements import through_root_extra  # as in _from_extras

        wanted = through_root_extra(self.root, [toolkit]) or toolkit.wanted()
        return Provision(canonicalize_name(provider.distribution),
                         f"{toolkit.describe()} (not installed: its extra {provider.extra} brings "
                         f"{provider.distribution})", wanted, None)

    def _keys_shipping(self, soname: str) -> list[str]:
        """Every distribution whose RECORD lists a file named ``soname``, by name."""
        return sorted({d.key for _, d in self.owners.files_named(soname)})

    def provision(self, soname: str, path: Path | None) -> Provision | None:
        """Who provides ``soname``: the declared requirement, else what the table or the file's owner says."""
        declared = self.declared(soname, path)
        if declared is not None:
            return declared
        provider = self.table_provider(soname)
        if provider is not None:
            return Provision(canonicalize_name(provider.distribution), "", provider.spec(self.cuda),
                             self.env.get(provider.distribution), declared=False)
        owned = self.owners.of(path) if path is not None else []
        if owned:
            dist = owned[0][0]
            return Provision(dist.key, "", f"{dist.name}=={dist.version}", dist)
        return None

    def fix(self, soname: str, path: Path | None) -> str:
        """The command that makes ``soname`` available to the root as it declares it."""
        provision = self.provision(soname, path)
        if provision is None:
            return (f"install the distribution that provides {soname}, or reinstall {self.root.name} from the "
                    f"index that matches this platform")
        return provision.fix(self.root.installer)

    def _from_extras(self, keys: Sequence[str]) -> Provision | None:
        """A wheel one of the root's extras declares: reinstall it when installed, else install the root's extras."""
        from pytest_cudadeps.engine.requirements import extras_spec  # frameworks imports the resolver's users; imported when asked

        for key in keys:
            if key in self.extras:
                demand, installed = self.extras[key][0], self.env.get(key)
                wanted = demand.wanted() if installed is not None else extras_spec(self.root.name, self.extras)
                return Provision(key, demand.describe(), wanted, installed)
        return None

    def _toolkit_demand(self, provider: Provider | None) -> Demand | None:
        """The demand on cuda-toolkit whose extras include the provider's, when cuda-toolkit is not installed."""
        if provider is None or provider.extra is None:
            return None
        for demand in self.demands.get("cuda-toolkit", []):
            if provider.extra in {canonicalize_name(e) for e in demand.requirement.extras}:
                return demand
        return None
